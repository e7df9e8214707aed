package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grapevine-gw/grapevine/proxy/balancer"
	"github.com/grapevine-gw/grapevine/proxy/grpcup"
	"github.com/grapevine-gw/grapevine/proxy/h2bridge"
	"github.com/grapevine-gw/grapevine/proxy/kongheaders"
	"github.com/grapevine-gw/grapevine/proxy/tlsconf"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/grapevine-gw/grapevine/internal/listen"
)

// Server is the proxy listener: New → Start → Shutdown. Swap may be called
// at any time, before or after Start, from any goroutine.
type Server struct {
	cfg         Config
	log         zerolog.Logger
	names       headerNames
	upstreamLog logSampler // samples upstream failure lines per service
	// defaultBodyType is ErrorDefaultType's template.
	defaultBodyType bodyType
	via             []byte // "1.1 grapevine/<version>"
	via2            []byte // "2 grapevine/<version>": HTTP/2 requests' Via upstream
	pool            *clientPool
	registry        *balancer.Registry // upstreams' balancer state (balanced.go)
	dns             *targetDNS         // addresses of balancer targets named by host names
	stopDNS         context.CancelFunc // ends dns's resolving, started by Start
	grpc            *grpcup.Client     // HTTP/2 to grpc and grpcs services (grpc.go)
	addrClients     addrClients        // clients of balanced addresses
	state           atomic.Pointer[active]

	requests atomic.Int64 // requests handled
	tunnels  tunnelSet    // upgraded connections (tunnel.go)
	draining atomic.Bool  // shutting down: every answer closes its connection

	swapMu     sync.Mutex        // serialises Swap so pool bindings match the stored state
	clientRefs map[clientKey]int // guarded by swapMu: service slots per client (bind.go)
	keyed      []keyedState      // guarded by swapMu: state kept across swaps (keyed.go)

	// h2 serves HTTP/2 when an entry has http2; nil: none (h2.go).
	// Set by Start before any connection, read by Shutdown under mu.
	h2 *h2bridge.Server

	// defaults are served when no SNI entity names the client's server
	// name: ssl_cert, or Kong's pair generated at Start.
	defaults *tlsconf.Defaults

	mu        sync.Mutex // guards the fields below
	srv       *fasthttp.Server
	listeners []*clientConns // proxy_listen's entries, bound, in order
	conns     *connTable     // the client connections of every listener
	serveDone chan struct{}  // closed when every listener's serve loop ended
	stopped   bool
}

// active is a snapshot bound to this server's upstream clients.
type active struct {
	snap    *Snapshot
	clients []*upstreamClient // indexed by service.idx
	lives   []*balancer.Live  // indexed like snap.balancers
}

// New returns a server serving EmptySnapshot until the first Swap. Invalid
// configuration values fall back to their defaults (see Config.Validate).
func New(cfg Config) *Server {
	if err := cfg.Validate(); err != nil {
		cfg.Logger.Warn().Err(err).Msg("proxy config: using defaults")
		cfg.LatencyHeaders = DefaultConfig().LatencyHeaders
		cfg.ErrorDefaultType = DefaultConfig().ErrorDefaultType
	}
	defaultBodyType, _ := parseBodyType(cfg.ErrorDefaultType)
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger.With().Str("component", "proxy").Logger(),
		names: latencyHeaderNames(cfg.LatencyHeaders),

		defaultBodyType: defaultBodyType,
		upstreamLog:     logSampler{interval: upstreamLogEvery},
		via:             []byte("1.1 grapevine/" + cfg.Version),
		via2:            []byte("2 grapevine/" + cfg.Version),
		pool:            newClientPool(resolverFor(cfg.DNSResolvers), cfg.DNS.Order),
		grpc:            grpcup.New(),
	}
	s.registry = balancer.NewRegistry(cfg.Logger.With().Str("component", "balancer").Logger())
	s.dns = newTargetDNS(cfg.DNSResolvers, cfg.DNS, cfg.Logger.With().Str("component", "balancer").Logger())
	s.dns.onChange = s.rebindResolved
	s.keyed = append(s.keyed, registryForget{s.registry}, grpcPrune{s.grpc})
	s.Swap(EmptySnapshot())
	return s
}

// Swap makes snap the routing table for the next request.
func (s *Server) Swap(snap *Snapshot) {
	if snap == nil {
		snap = EmptySnapshot()
	}
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	prev := s.state.Load()
	s.state.Store(&active{snap: snap, clients: s.bindClients(prev, snap), lives: s.bindBalancers(prev, snap)})
	for _, k := range s.keyed {
		k.forget(snap)
	}
}

// Snapshot returns the routing table in use.
func (s *Server) Snapshot() *Snapshot {
	return s.state.Load().snap
}

// Start binds every proxy_listen address and serves in the background. It
// returns once the listeners are bound; ctx bounds only the start-up, not
// the server's life.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil || s.stopped {
		return errors.New("proxy: start: already started")
	}
	entries, err := listen.Parse(s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("proxy_listen: %w", err)
	}
	if len(entries) == 0 {
		return errors.New("proxy_listen: no address to listen on")
	}
	if err := s.prepareTLS(entries); err != nil {
		return err
	}
	s.conns = newConnTable(s.cfg.MaxConnections, s.cfg.SendTimeout, s.log)
	h2 := anyHTTP2(entries)
	for _, e := range entries {
		l, err := s.bind(ctx, e, h2)
		if err != nil {
			s.closeListeners()
			return err
		}
		s.listeners = append(s.listeners, l)
	}
	s.srv = s.newFastHTTPServer()
	s.enableHTTP2(entries)
	s.serveDone = make(chan struct{})
	dnsCtx, stopDNS := context.WithCancel(context.Background())
	s.stopDNS = stopDNS
	go s.dns.run(dnsCtx)
	var wg sync.WaitGroup
	for _, l := range s.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serve(s.srv, l)
		}()
		s.log.Info().Str("proxy_listen", l.Addr().String()).Bool("ssl", l.tls != nil).Int("max_connections", s.cfg.MaxConnections).Msg("proxy listening")
	}
	go func() {
		wg.Wait()
		close(s.serveDone)
	}()
	return nil
}

// bind opens one proxy_listen entry; an ssl one offers h2 when h2 (any
// entry has http2, see anyHTTP2). Its nginx-only flags (reuseport,
// backlog=N, deferred, bind) change nothing here.
func (s *Server) bind(ctx context.Context, e listen.Listener, h2 bool) (*clientConns, error) {
	ln, err := bindWith(ctx, s.cfg.Bind, e.Addr)
	if err != nil {
		return nil, fmt.Errorf("proxy_listen %s: %w", e.Addr, err)
	}
	l := newClientConns(ln, s.conns)
	if e.Has("ssl") {
		l.tls = s.serverTLSConfig(h2)
	}
	return l, nil
}

// bindWith opens addr through bind, or binds a new socket when bind is nil.
func bindWith(ctx context.Context, bind func(context.Context, string) (net.Listener, error), addr string) (net.Listener, error) {
	if bind != nil {
		return bind(ctx, addr)
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}

func (s *Server) closeListeners() {
	for _, l := range s.listeners {
		l.Close()
	}
	s.listeners = nil
}

// idleTimeout is how long a client connection may wait between requests
// (nginx's keepalive_timeout).
const idleTimeout = 60 * time.Second

// newFastHTTPServer reads requests with the client timeouts of nginx:
// ReadTimeout runs from a connection's first byte (or its opening) until
// the headers are read; the body is read by the handler, with
// ClientBodyTimeout between reads, from a stream, so a declared length is
// never allocated before the bytes arrive.
func (s *Server) newFastHTTPServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                      s.serveRequest,
		ErrorHandler:                 s.handleParseError,
		ExpectHandler:                s.handleExpect,
		ConnState:                    connState,
		Name:                         s.serverHeader(),
		ReadBufferSize:               s.headerBufferSize(),
		WriteBufferSize:              16 << 10,
		IdleTimeout:                  idleTimeout,
		ReadTimeout:                  s.cfg.ClientHeaderTimeout,
		StreamRequestBody:            true,
		MaxRequestBodySize:           streamPrefetch,
		SecureErrorLogMessage:        true, // no client bytes in logs
		DisablePreParseMultipartForm: true,
		NoDefaultContentType:         true,
		ReduceMemoryUsage:            false,
		CloseOnShutdown:              true,
		NoDefaultServerHeader:        !s.cfg.Headers.Has(kongheaders.Server), // Server: grapevine/<ver> when upstream sends none
		Logger:                       fasthttpLogger{s.log},
	}
}

// serverHeader is the Server sent when the upstream sends none and on
// the proxy's own answers; "" (none) when kong.conf's headers leave
// Server out.
func (s *Server) serverHeader() string {
	if !s.cfg.Headers.Has(kongheaders.Server) {
		return ""
	}
	return "grapevine/" + s.cfg.Version
}

// headerBufferSize is what a connection reads a request's headers into:
// large_client_header_buffers' whole size, kept between 4 and 64 KiB.
func (s *Server) headerBufferSize() int {
	return min(max(s.cfg.LargeHeaderBuffers*s.cfg.LargeHeaderBufferSize, 4<<10), 64<<10)
}

// serve runs the accept loop until Shutdown closes the listener.
func (s *Server) serve(srv *fasthttp.Server, ln net.Listener) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error().Interface("panic", v).Bytes("stack", debug.Stack()).Msg("proxy serve loop panicked")
		}
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Error().Err(err).Msg("proxy serve")
	}
}

// Stats are the proxy's counters for the Admin API's GET /status.
type Stats struct {
	ConnectionsAccepted int64
	ConnectionsActive   int64
	TotalRequests       int64
	// AcceptError is why the proxy cannot accept connections now (out of
	// descriptors, say), nil while it can; AcceptFailingSince is when the
	// failures began.
	AcceptError        error
	AcceptFailingSince time.Time
}

// Stats reads the counters; safe from any goroutine.
func (s *Server) Stats() Stats {
	st := Stats{TotalRequests: s.requests.Load()}
	s.mu.Lock()
	conns := s.conns
	s.mu.Unlock()
	if conns != nil {
		st.ConnectionsAccepted = conns.accepted.Load()
		st.ConnectionsActive = conns.open.Load()
		st.AcceptError, st.AcceptFailingSince = conns.acceptError()
	}
	return st
}

// Addr is the first bound listen address, nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) == 0 {
		return nil
	}
	return s.listeners[0].Addr()
}

// Addrs are the bound listen addresses in proxy_listen's order, each with
// whether it serves TLS; nil before Start.
func (s *Server) Addrs() []ListenAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ListenAddr, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = ListenAddr{Addr: l.Addr(), TLS: l.tls != nil}
	}
	return out
}

// ListenAddr is one bound proxy listener.
type ListenAddr struct {
	Addr net.Addr
	TLS  bool
}

// Shutdown stops accepting, lets in-flight requests finish (until ctx ends),
// closes the tunnels of upgraded connections (a WebSocket may stay open for
// hours, so waiting for it is no drain) and the idle upstream connections.
// It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, h2, listeners, done, first := s.srv, s.h2, s.listeners, s.serveDone, !s.stopped
	s.stopped = true
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if first {
		if h2 != nil {
			h2.Shutdown() // GOAWAY, so HTTP/2 connections end with their streams
		}
		s.drain(ctx, listeners)
		// Closes what is left; the listeners are closed already.
		if err := srv.ShutdownWithContext(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("proxy shutdown: %w", err)
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("proxy shutdown: %w", ctx.Err())
	}
	if err := s.tunnels.closeAll(ctx); err != nil {
		return fmt.Errorf("proxy shutdown: tunnels: %w", err)
	}
	s.stopDNS()
	s.pool.closeIdle()
	s.registry.Close()
	s.addrClients.closeIdle()
	s.grpc.CloseIdle()
	return nil
}

// drainIdle is how long a client connection may sit idle while the proxy
// drains before it is closed: a keep-alive client under load sends its
// next request well within it (and gets Connection: close), so closing
// it cannot race with a request on its way, as closing every idle
// connection at once does (nginx's graceful shutdown, fasthttp's).
const drainIdle = time.Second

// drain stops accepting and lets the open connections end by themselves
// until ctx is done: each next answer carries Connection: close, so
// keep-alive clients reconnect (to the node's successor, which holds the
// same listening sockets after an in-place restart, or to another node),
// and connections idle for drainIdle are closed. Open tunnels do not hold
// the drain up.
func (s *Server) drain(ctx context.Context, listeners []*clientConns) {
	s.draining.Store(true)
	for _, l := range listeners {
		_ = l.Close()
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	// Tunnels (WebSockets) are closed after the drain, by Shutdown.
	for s.conns.open.Load() > int64(s.tunnels.openTunnels()) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.conns.closeIdleFor(drainIdle, time.Now())
		}
	}
}

// serveRequest handles one request; while the proxy drains, its answer
// closes the connection.
func (s *Server) serveRequest(ctx *fasthttp.RequestCtx) {
	s.handle(ctx)
	if s.draining.Load() {
		ctx.Response.SetConnectionClose()
	}
}

// fasthttpLogger sends fasthttp's own messages (mostly client connection
// errors) to the debug log.
type fasthttpLogger struct{ log zerolog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug().Msgf(format, args...)
}
