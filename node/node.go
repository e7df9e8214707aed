// Package node owns one Grapevine node's life: it loads the configuration,
// opens the store, builds the proxy's snapshot from the database before the
// proxy port opens, starts the proxy and the Admin API, applies committed
// changes, and shuts everything down in order. It holds no request-path or
// SQL logic of its own: those belong to proxy, admin and store.
package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/admin"
	"github.com/grapevine-gw/grapevine/node/config"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/store"
)

// Version is Grapevine's own version.
const Version = "0.1.0"

// KongVersion is the Kong Gateway version whose Admin API Grapevine speaks;
// GET / reports it so Kong clients (go-kong, decK) pick the right behaviour.
const KongVersion = "3.9.1"

// Node is one running gateway node.
type Node struct {
	cfg config.Config
	log zerolog.Logger
	id  string

	store *store.Store
	proxy *proxy.Server
	admin *admin.Server

	// reloadMu serialises snapshot rebuilds so that swaps happen in the
	// order the database was read: the last swap holds every change
	// committed before it started.
	reloadMu sync.Mutex

	shutdownOnce sync.Once
	shutdownErr  error
}

// New prepares a node; nothing is opened until Start.
func New(cfg config.Config, log zerolog.Logger) *Node {
	return &Node{cfg: cfg, log: log, id: nodeID(cfg)}
}

// ID is the node's id as reported on GET / (node_id).
func (n *Node) ID() string { return n.id }

// nodeID is stable across restarts of the same host and listeners, so a
// restarted node keeps its identity.
func nodeID(cfg config.Config) string {
	hostname, _ := os.Hostname()
	seed := fmt.Sprintf("%s|%v|%v|%s", hostname, cfg.ProxyListen, cfg.AdminListen, cfg.ClusterListen)
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(seed)).String()
}

// Start opens the store, builds the first snapshot, then opens the proxy and
// Admin API ports. On error everything already started is stopped again.
func (n *Node) Start(ctx context.Context) error {
	if err := n.start(ctx); err != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Shutdown(shutdownCtx)
		return err
	}
	return nil
}

func (n *Node) start(ctx context.Context) error {
	st, err := store.Open(ctx, StoreConfig(n.cfg, n.id))
	if err != nil {
		return fmt.Errorf("opening database: %w", err)
	}
	n.store = st
	if err := st.CheckSchema(ctx); err != nil {
		return fmt.Errorf("checking database schema (run 'grapevine migrations bootstrap' or 'up'): %w", err)
	}
	snap, err := n.loadSnapshot(ctx)
	if err != nil {
		return fmt.Errorf("building the first snapshot: %w", err)
	}
	if err := n.startProxy(ctx, snap); err != nil {
		return err
	}
	return n.startAdmin(ctx)
}

func (n *Node) startProxy(ctx context.Context, snap *proxy.Snapshot) error {
	if len(n.cfg.ProxyListen) == 0 {
		return nil
	}
	cfg := proxy.DefaultConfig()
	cfg.Listen = n.cfg.ProxyListen[0]
	cfg.Version = Version
	cfg.LatencyHeaders = n.cfg.LatencyHeaders
	cfg.Logger = n.log.With().Str("component", "proxy").Logger()
	n.proxy = proxy.New(cfg)
	n.proxy.Swap(snap)
	if err := n.proxy.Start(ctx); err != nil {
		return fmt.Errorf("starting proxy: %w", err)
	}
	n.log.Info().Str("listen", n.proxy.Addr().String()).Msg("proxy listening")
	return nil
}

func (n *Node) startAdmin(ctx context.Context) error {
	if len(n.cfg.AdminListen) == 0 {
		return nil
	}
	hostname, _ := os.Hostname()
	cfg := admin.Config{
		Listen:        n.cfg.AdminListen[0],
		Version:       KongVersion,
		NodeID:        n.id,
		Hostname:      hostname,
		Configuration: n.cfg.Values(),
		Logger:        n.log.With().Str("component", "admin").Logger(),
	}
	if len(n.cfg.ProxyListen) > 0 {
		cfg.ProxyListen = n.cfg.ProxyListen[0]
	}
	n.admin = admin.New(cfg, n.store, n)
	if err := n.admin.Start(ctx); err != nil {
		return fmt.Errorf("starting admin API: %w", err)
	}
	n.log.Info().Str("listen", n.admin.Addr().String()).Msg("admin API listening")
	return nil
}

// ProxyAddr is the proxy's bound address, nil when the proxy is off.
func (n *Node) ProxyAddr() net.Addr {
	if n.proxy == nil {
		return nil
	}
	return n.proxy.Addr()
}

// AdminAddr is the Admin API's bound address, nil when it is off.
func (n *Node) AdminAddr() net.Addr {
	if n.admin == nil {
		return nil
	}
	return n.admin.Addr()
}

// Shutdown stops the Admin API, then drains the proxy, then closes the
// store. It is safe to call more than once.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() {
		var errs []error
		if n.admin != nil {
			errs = append(errs, n.admin.Shutdown(ctx))
		}
		if n.proxy != nil {
			errs = append(errs, n.proxy.Shutdown(ctx))
		}
		if n.store != nil {
			n.store.Close()
		}
		n.shutdownErr = errors.Join(errs...)
	})
	return n.shutdownErr
}

// StoreConfig maps the pg_* keys onto the store's configuration.
func StoreConfig(cfg config.Config, nodeID string) store.Config {
	return store.Config{
		Host:     cfg.PgHost,
		Port:     cfg.PgPort,
		User:     cfg.PgUser,
		Password: cfg.PgPassword,
		Database: cfg.PgDatabase,
		NodeID:   nodeID,
		MaxConns: int32(cfg.PgMaxConns),
	}
}
