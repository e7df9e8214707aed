// Package admin owns Grapevine's Kong-compatible Admin API: routing of the
// Admin API paths, request decoding, pagination, Kong's status codes and
// error bodies, and the info endpoints (/, /status, /schemas, /tags). It
// reads and writes entities only through the store, validates them only
// through the entity package, and makes a committed change live on this
// node through the Applier it is given. It must not touch the proxy, the
// gossip layer or the store's tables directly.
package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/listen"
	"github.com/grapevine-gw/grapevine/store"
	"github.com/rs/zerolog"
)

// Config configures the Admin API. Zero values mean the defaults named.
type Config struct {
	Listen        string         // admin_listen: addresses separated by commas, with Kong's flags; default "127.0.0.1:8001"
	Version       string         // Kong version reported as GET / "version"; default entity.KongVersion
	ServerVersion string         // Grapevine's own version, in "Server: grapevine/<v>"; default Version
	Cluster       Cluster        // the cluster view for /cluster; nil when gossip is off
	NodeID        string         // GET / node_id
	Hostname      string         // GET / hostname
	Configuration map[string]any // kong.conf values minus secrets, GET / "configuration"
	ProxyListen   string         // proxy_listen, rendered as proxy_listeners; default "0.0.0.0:8000"
	Stats         func() ServerStats
	Health        Health // the balancers' health (health.go); nil: the health endpoints are absent
	// Source says where the configuration the node serves comes from, for
	// GET /status; nil leaves those keys out.
	Source func() ConfigSource
	// Metrics writes the node's metrics for GET /metrics (the prometheus
	// plugin's endpoint); nil leaves the endpoint out.
	Metrics func(ctx context.Context, w io.Writer) error
	Logger  zerolog.Logger
	// DBTimeout bounds every store call of a request; default 5s.
	DBTimeout time.Duration
	// DBOutage, if set, returns a context that ends when the node finds
	// the database unreachable (a fresh one while it answers): store calls
	// in flight then end at once and later ones fail without a round
	// trip, answered 503 (dbgate.go). Nil waits for DBTimeout.
	DBOutage func() context.Context
	// PingTimeout bounds GET /status's database check; default 1s.
	PingTimeout time.Duration
	// MaxBodySize is nginx_admin_client_max_body_size in bytes: a larger
	// request body is refused with 413 before it is read; default 10 MiB
	// (Kong's "10m").
	MaxBodySize int64
	// TLS serves the listeners flagged ssl (admin_ssl_cert, client
	// certificate checks); it must be set when one is.
	TLS *tls.Config
	// Bind opens a listening socket for an address of Listen; nil binds a
	// new one (see proxy.Config.Bind).
	Bind func(ctx context.Context, addr string) (net.Listener, error)
	// DBLess serves a node without a database (Kong's database = off):
	// entities are read from its configuration and written only whole,
	// through POST /config. nil: the store given to New.
	DBLess *DBLess
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:8001", Version: entity.KongVersion, ProxyListen: "0.0.0.0:8000",
		DBTimeout: 5 * time.Second, PingTimeout: time.Second, MaxBodySize: 10 << 20}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	if c.Version == "" {
		c.Version = d.Version
	}
	if c.ServerVersion == "" {
		c.ServerVersion = c.Version
	}
	if c.ProxyListen == "" {
		c.ProxyListen = d.ProxyListen
	}
	if c.DBTimeout <= 0 {
		c.DBTimeout = d.DBTimeout
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = d.PingTimeout
	}
	if c.MaxBodySize <= 0 {
		c.MaxBodySize = d.MaxBodySize
	}
	return c
}

// ServerStats are the connection counters GET /status reports.
type ServerStats struct {
	ConnectionsAccepted int64
	ConnectionsActive   int64
	ConnectionsHandled  int64
	ConnectionsReading  int64
	ConnectionsWaiting  int64
	ConnectionsWriting  int64
	TotalRequests       int64
	// ProxyAcceptError is why the proxy cannot accept connections now, ""
	// while it can; ProxyAcceptFailingSince is when that began.
	ProxyAcceptError        string
	ProxyAcceptFailingSince time.Time
}

// Applier makes a committed change live on this node; the Admin API calls
// it after commit and before answering, so the next proxy request on this
// node already sees the change.
type Applier interface {
	Apply(ctx context.Context, c store.Change) error
}

// Server is one node's Admin API.
type Server struct {
	cfg     Config
	st      Store // nil without a store (some tests)
	applier Applier
	kinds   kindSet
	log     zerolog.Logger
	started time.Time

	mu       sync.Mutex // guards the fields below
	srv      *http.Server
	lns      []net.Listener // admin_listen's entries, bound, in order
	doneCh   chan struct{}
	shutdown bool
}

// New builds the Admin API over st; applier may be nil.
func New(cfg Config, st *store.Store, applier Applier) *Server {
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, applier: applier, kinds: registeredKinds(),
		log: cfg.Logger.With().Str("component", "admin").Logger(), started: time.Now()}
	switch {
	case cfg.DBLess != nil:
		s.st = cfg.DBLess.Store
	case st != nil: // a nil *store.Store must stay a nil Store
		s.st = st
	}
	return s
}

// Handler returns the Admin API as an http.Handler.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Start binds admin_listen and serves in a goroutine; it returns once listening.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("admin: already started")
	}
	entries, err := listen.Parse(s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("admin_listen: %w", err)
	}
	// Kong's template turns "http2 on" for the whole Admin API server
	// block when any admin_listen entry has http2 (nginx_kong.lua): every
	// ssl listener then offers h2 by ALPN, every plain one takes HTTP/2
	// with prior knowledge beside HTTP/1.1.
	h2 := slices.ContainsFunc(entries, func(e listen.Listener) bool { return e.Has("http2") })
	for _, e := range entries {
		ln, err := s.bind(ctx, e, h2)
		if err != nil {
			for _, l := range s.lns {
				l.Close()
			}
			s.lns = nil
			return err
		}
		s.lns = append(s.lns, ln)
	}
	s.doneCh = make(chan struct{})
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	if h2 {
		s.srv.Protocols = new(http.Protocols)
		s.srv.Protocols.SetHTTP1(true)
		s.srv.Protocols.SetHTTP2(true)
		s.srv.Protocols.SetUnencryptedHTTP2(true)
	}
	var wg sync.WaitGroup
	for _, ln := range s.lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serve(s.srv, ln)
		}()
		s.log.Info().Str("admin_listen", ln.Addr().String()).Msg("admin API listening")
	}
	go func() {
		wg.Wait()
		close(s.doneCh)
	}()
	return nil
}

// bind opens one admin_listen entry: TLS when flagged ssl, with HTTP/2
// offered by ALPN when h2 (any entry has http2).
func (s *Server) bind(ctx context.Context, e listen.Listener, h2 bool) (net.Listener, error) {
	var ln net.Listener
	var err error
	if s.cfg.Bind != nil {
		ln, err = s.cfg.Bind(ctx, e.Addr)
	} else {
		var lc net.ListenConfig
		ln, err = lc.Listen(ctx, "tcp", e.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("admin_listen %s: %w", e.Addr, err)
	}
	if !e.Has("ssl") {
		return ln, nil
	}
	if s.cfg.TLS == nil {
		ln.Close()
		return nil, fmt.Errorf("admin_listen %s: ssl without a TLS configuration", e.Addr)
	}
	c := s.cfg.TLS.Clone()
	c.NextProtos = []string{"http/1.1"}
	if h2 {
		c.NextProtos = []string{"h2", "http/1.1"}
	}
	return tls.NewListener(ln, c), nil
}

func (s *Server) serve(srv *http.Server, ln net.Listener) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error().Interface("panic", p).Bytes("stack", debug.Stack()).Msg("admin server panicked")
		}
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error().Err(err).Msg("admin server stopped")
	}
}

// Addr is the bound address, nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lns) == 0 {
		return nil
	}
	return s.lns[0].Addr()
}

// Shutdown stops accepting, waits for requests in flight (bounded by ctx)
// and for the serving goroutine. Safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, doneCh, already := s.srv, s.doneCh, s.shutdown
	s.shutdown = true
	s.mu.Unlock()
	if srv == nil || already {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		srv.Close()
	}
	select {
	case <-doneCh:
	case <-ctx.Done():
	}
	if err != nil {
		return fmt.Errorf("admin shutdown: %w", err)
	}
	return nil
}
