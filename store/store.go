// Package store owns Grapevine's PostgreSQL database: the schema (embedded,
// versioned migrations), entity persistence, the cluster_events table that
// tells peers what changed, and the nodes registry. Entities are stored
// generically: a few indexed columns (id, endpoint key and other unique
// fields, foreign keys, tags, timestamps) beside the entity's whole JSON
// document. Which tables and columns exist, and what a delete cascades to,
// it derives from the entity package's registry of kinds; validation and
// rendering belong to the entity and admin packages. It must not import the
// proxy, admin or node packages, and nothing but this package may write to
// the tables it creates.
package store

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config says how to reach PostgreSQL. The zero value of each field means
// its default; Kong's kong.conf key for it is named beside.
type Config struct {
	Host     string // pg_host; default "127.0.0.1"
	Port     int    // pg_port; default 5432
	User     string // pg_user; default "kong"
	Password string // pg_password; default none
	Database string // pg_database; default "kong"

	// DSN, if set, is used instead of the fields above (tests use pgtest DSNs).
	DSN string
	// NodeID is written into cluster_events.node_id for this node's writes.
	NodeID string
	// MaxConns caps the pool; 0 means pgx's default (max(4, GOMAXPROCS)).
	MaxConns int32
	// ConnectTimeout bounds each connection attempt; 0 means 5s.
	ConnectTimeout time.Duration
}

// DefaultConfig returns Kong's defaults.
func DefaultConfig() Config {
	return Config{Host: "127.0.0.1", Port: 5432, User: "kong", Database: "kong"}
}

// withDefaults fills zero fields with DefaultConfig's values.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Host == "" {
		c.Host = d.Host
	}
	if c.Port == 0 {
		c.Port = d.Port
	}
	if c.User == "" {
		c.User = d.User
	}
	if c.Database == "" {
		c.Database = d.Database
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	return c
}

// ConnString returns DSN if set, else a postgres:// URL built from the
// fields (with defaults applied). TLS is off, as Kong's pg_ssl default.
func (c Config) ConnString() string {
	if c.DSN != "" {
		return c.DSN
	}
	c = c.withDefaults()
	u := url.URL{
		Scheme:   "postgres",
		Host:     net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		Path:     "/" + c.Database,
		RawQuery: "sslmode=disable",
	}
	if c.Password != "" {
		u.User = url.UserPassword(c.User, c.Password)
	} else {
		u.User = url.User(c.User)
	}
	return u.String()
}

// Store is a pool of connections to Grapevine's database. It is safe for
// concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	nodeID string

	// probeMu guards probe, the connection Probe keeps outside the pool.
	probeMu sync.Mutex
	probe   *pgx.Conn
}

// Open connects to the database and pings it. It does not migrate: nodes
// call CheckSchema, the migrations command calls Bootstrap or Up.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	s, err := Connect(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Connect makes the pool without reaching the database: connections are
// opened as calls need them, so a node can start while PostgreSQL is out
// of reach and its calls succeed as soon as it answers again.
func Connect(cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	pcfg, err := pgxpool.ParseConfig(cfg.ConnString())
	if err != nil {
		return nil, fmt.Errorf("parse database config: %w", err)
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	}
	if pcfg.ConnConfig.ConnectTimeout == 0 {
		pcfg.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", classify(err))
	}
	return &Store{pool: pool, nodeID: cfg.NodeID}, nil
}

// Close closes every connection; it waits for connections in use to be
// released. Safe to call more than once.
func (s *Store) Close() {
	s.pool.Close()
	s.probeMu.Lock()
	if s.probe != nil {
		s.closeProbe()
	}
	s.probeMu.Unlock()
}

// Probe checks that the database answers on a connection of its own,
// outside the pool: a pool whose connections are all busy (a large import)
// is not an outage, and a pooled connection stuck on a database that
// drops packets must not hide that a fresh one cannot get through. The
// connection is kept between probes and reopened after a failure; an
// unreachable database gives an error matching ErrUnavailable.
func (s *Store) Probe(ctx context.Context) error {
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	if s.probe == nil {
		conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
		if err != nil {
			return fmt.Errorf("probe database: %w", classify(err))
		}
		s.probe = conn
	}
	if err := s.probe.Ping(ctx); err != nil {
		s.closeProbe()
		return fmt.Errorf("probe database: %w", classify(err))
	}
	return nil
}

// closeProbe closes the probe's connection without waiting on a database
// that may not answer. The caller holds probeMu.
func (s *Store) closeProbe() {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = s.probe.Close(ctx)
	s.probe = nil
}

// Ping checks that the database answers; an unreachable database gives an
// error matching ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", classify(err))
	}
	return nil
}
