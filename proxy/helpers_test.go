package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/entity"
)

// testRoute is a route with Kong's defaults, changed by opts.
func testRoute(id, serviceID string, opts ...func(*entity.Route)) entity.Route {
	r := entity.Route{
		ID:                      id,
		Protocols:               []string{"http", "https"},
		HTTPSRedirectStatusCode: 426,
		StripPath:               true,
		PathHandling:            "v0",
		RequestBuffering:        true,
		ResponseBuffering:       true,
	}
	if serviceID != "" {
		r.Service = &entity.ForeignKey{ID: serviceID}
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func paths(p ...string) func(*entity.Route)   { return func(r *entity.Route) { r.Paths = p } }
func hosts(h ...string) func(*entity.Route)   { return func(r *entity.Route) { r.Hosts = h } }
func methods(m ...string) func(*entity.Route) { return func(r *entity.Route) { r.Methods = m } }
func headers(kv ...string) func(*entity.Route) {
	return func(r *entity.Route) {
		r.Headers = map[string][]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			r.Headers[kv[i]] = append(r.Headers[kv[i]], kv[i+1])
		}
	}
}
func regexPriority(n int) func(*entity.Route) { return func(r *entity.Route) { r.RegexPriority = n } }
func snis(s ...string) func(*entity.Route)    { return func(r *entity.Route) { r.SNIs = s } }
func noStrip(r *entity.Route)                 { r.StripPath = false }
func preserveHost(r *entity.Route)            { r.PreserveHost = true }

// testService is a service with Kong's defaults pointing at addr
// ("host:port"), changed by opts.
func testService(t testing.TB, id, addr string, opts ...func(*entity.Service)) entity.Service {
	t.Helper()
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("split %q: %v", addr, err)
	}
	port, _ := strconv.Atoi(portText)
	s := entity.Service{
		ID: id, Protocol: "http", Host: host, Port: port, Retries: 5,
		ConnectTimeout: 60000, ReadTimeout: 60000, WriteTimeout: 60000, Enabled: true,
	}
	for _, o := range opts {
		o(&s)
	}
	return s
}

// mustSnapshot builds a snapshot and fails on warnings.
func mustSnapshot(t testing.TB, services []entity.Service, routes []entity.Route) *Snapshot {
	t.Helper()
	snap, warnings := NewSnapshot(SnapshotInput{Services: services, Routes: routes})
	for _, w := range warnings {
		t.Fatalf("snapshot warning: %v", w)
	}
	return snap
}

// startProxy starts a Server on 127.0.0.1:0 serving snap.
func startProxy(t testing.TB, snap *Snapshot) *Server {
	t.Helper()
	return startProxyWith(t, snap, func(*Config) {})
}

// startProxyWith starts a Server like startProxy, with configure's changes
// to its Config.
func startProxyWith(t testing.TB, snap *Snapshot, configure func(*Config)) *Server {
	t.Helper()
	return startProxyPrepared(t, snap, configure, func(*Server) {})
}

// startProxyPrepared starts a Server like startProxyWith, with prepare run
// on it before it takes snap.
func startProxyPrepared(t testing.TB, snap *Snapshot, configure func(*Config), prepare func(*Server)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Version = "9.9.9"
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	configure(&cfg)
	s := New(cfg)
	prepare(s)
	s.Swap(snap)
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// seen is what an upstream received.
type seen struct {
	URI    string
	Host   string
	Header http.Header
}

// upstream is an httptest server that records requests and answers 200
// with the body "ok".
type upstream struct {
	*httptest.Server
	conns atomic.Int64 // connections accepted
	mu    sync.Mutex   // guards reqs
	reqs  []seen
}

func newUpstream(t testing.TB, handler http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone()})
		u.mu.Unlock()
		if handler != nil {
			handler(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	u.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

// count is how many requests the upstream got.
func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func (u *upstream) addr() string { return u.Listener.Addr().String() }

func (u *upstream) last(t testing.TB) seen {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatalf("upstream got no request")
	}
	return u.reqs[len(u.reqs)-1]
}

// get sends a request through the proxy and returns status, headers, body.
func send(t testing.TB, s *Server, method, target string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.Addr().String()+target, nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, resp.Header, string(body)
}
