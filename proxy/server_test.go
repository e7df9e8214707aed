package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy/kongheaders"
)

var requestIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestProxyHeaders(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "upstream/1")
		w.Header().Set("Via", "1.1 origin")
		io.WriteString(w, "ok")
	})
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())},
		[]entity.Route{testRoute(idA, "s1", paths("/api"))})
	s := startProxy(t, snap)
	_, port, _ := net.SplitHostPort(s.Addr().String())

	status, down, body := send(t, s, "GET", "/api/users?x=1&y", map[string]string{
		"Host": "Example.COM:9999", "X-Forwarded-For": "10.0.0.1", "Via": "1.0 client-proxy",
		"X-Forwarded-Prefix": "/spoofed",
	})
	if status != 200 || body != "ok" {
		t.Fatalf("got %d %q, want 200 \"ok\"", status, body)
	}
	got := up.last(t)
	upstreamWant := map[string]string{
		"X-Forwarded-For":    "10.0.0.1, 127.0.0.1",
		"X-Forwarded-Proto":  "http",
		"X-Forwarded-Host":   "example.com",
		"X-Forwarded-Port":   port,
		"X-Forwarded-Path":   "/api/users",
		"X-Forwarded-Prefix": "/api",
		"X-Real-Ip":          "127.0.0.1",
		"Via":                "1.0 client-proxy, 1.1 grapevine/9.9.9",
		"X-Kong-Request-Id":  down.Get("X-Kong-Request-Id"),
	}
	for name, want := range upstreamWant {
		t.Run("upstream "+name, func(t *testing.T) {
			if v := got.Header.Get(name); v != want {
				t.Errorf("got %q, want %q", v, want)
			}
		})
	}
	t.Run("upstream URI and Host", func(t *testing.T) {
		if got.URI != "/users?x=1&y" {
			t.Errorf("got URI %q, want %q", got.URI, "/users?x=1&y")
		}
		if got.Host != up.addr() {
			t.Errorf("got Host %q, want %q", got.Host, up.addr())
		}
	})
	downstreamWant := map[string]string{
		"Server": "upstream/1",
		"Via":    "1.1 origin, 1.1 grapevine/9.9.9",
	}
	for name, want := range downstreamWant {
		t.Run("downstream "+name, func(t *testing.T) {
			if v := down.Get(name); v != want {
				t.Errorf("got %q, want %q", v, want)
			}
		})
	}
	t.Run("downstream latency and request id", func(t *testing.T) {
		for _, name := range []string{"X-Kong-Upstream-Latency", "X-Kong-Proxy-Latency"} {
			if down.Get(name) == "" {
				t.Errorf("got no %s", name)
			}
		}
		if id := down.Get("X-Kong-Request-Id"); !requestIDPattern.MatchString(id) {
			t.Errorf("got request id %q, want 32 hex digits", id)
		}
	})
}

func TestProxyServerHeaderDefault(t *testing.T) {
	up := newUpstream(t, nil)
	s := startProxy(t, mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())},
		[]entity.Route{testRoute(idA, "s1", paths("/"))}))
	_, h, _ := send(t, s, "GET", "/", nil)
	if got := h.Get("Server"); got != "grapevine/9.9.9" {
		t.Errorf("got Server %q, want %q", got, "grapevine/9.9.9")
	}
}

func TestProxyUpstreamURIAndHost(t *testing.T) {
	up := newUpstream(t, nil)
	svcPath := func(p string) func(*entity.Service) { return func(s *entity.Service) { s.Path = &p } }
	services := []entity.Service{
		testService(t, "plain", up.addr()),
		testService(t, "based", up.addr(), svcPath("/base")),
	}
	routes := []entity.Route{
		testRoute(idA, "plain", paths("/strip")),
		testRoute(idB, "plain", paths("/keep"), noStrip),
		testRoute(idC, "based", paths("/based"), preserveHost),
	}
	s := startProxy(t, mustSnapshot(t, services, routes))
	tests := []struct {
		name, target, host, wantURI, wantHost string
	}{
		{"strip_path", "/strip/x?q=1", "", "/x?q=1", up.addr()},
		{"strip_path whole path", "/strip", "", "/", up.addr()},
		{"no strip_path", "/keep/x", "", "/keep/x", up.addr()},
		{"service path and preserve_host", "/based/x", "api.example.com:8000", "/base/x", "api.example.com:8000"},
		{"normalised path goes upstream", "/strip/a/../b//c", "", "/b/c", up.addr()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.host != "" {
				hdr["Host"] = tt.host
			}
			status, _, _ := send(t, s, "GET", tt.target, hdr)
			if status != 200 {
				t.Fatalf("got status %d, want 200", status)
			}
			got := up.last(t)
			if got.URI != tt.wantURI {
				t.Errorf("got URI %q, want %q", got.URI, tt.wantURI)
			}
			if got.Host != tt.wantHost {
				t.Errorf("got Host %q, want %q", got.Host, tt.wantHost)
			}
		})
	}
}

func TestProxyErrors(t *testing.T) {
	slow := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	})
	timeouts := func(s *entity.Service) { s.ReadTimeout, s.Retries = 100, 0 }
	services := []entity.Service{
		testService(t, "closed", closedAddr(t)),
		testService(t, "slow", slow.addr(), timeouts),
		testService(t, "tcp", "127.0.0.1:1", func(s *entity.Service) { s.Protocol = "tcp" }),
	}
	routes := []entity.Route{
		testRoute(idA, "closed", paths("/closed")),
		testRoute(idB, "slow", paths("/slow")),
		testRoute(idC, "missing-service", paths("/orphan")),
		testRoute("dddddddd-0000-4000-8000-000000000000", "tcp", paths("/tcp")),
	}
	s := startProxy(t, mustSnapshot(t, services, routes))
	// Errors Kong raises itself (kong.response.error) default to JSON;
	// those nginx raises, upstream failures among them, go through Kong's
	// error handler and default to error_default_type, text/plain
	// (kong/error_handlers.lua, kong/templates/kong_defaults.lua).
	tests := []struct {
		name, target string
		wantStatus   int
		wantMessage  string
		wantJSON     bool
	}{
		{"no route", "/nowhere", 404, msgNoRoute, true},
		{"no service", "/orphan", 503, msgNoService, true},
		{"connection refused", "/closed", 502, msgBadResponse, false},
		{"read timeout", "/slow", 504, msgTimeout, false},
		{"stream service", "/tcp", 502, msgBadResponse, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, h, body := send(t, s, "GET", tt.target, nil)
			if status != tt.wantStatus {
				t.Errorf("got status %d, want %d", status, tt.wantStatus)
			}
			id := h.Get("X-Kong-Request-Id")
			want, wantType := tt.wantMessage+"\nrequest_id: "+id+"\n", "text/plain; charset=utf-8"
			if tt.wantJSON {
				want, wantType = "{\n  \"message\":\""+tt.wantMessage+"\",\n  \"request_id\":\""+id+"\"\n}", "application/json; charset=utf-8"
			}
			if body != want {
				t.Errorf("got body %q, want %q", body, want)
			}
			if ct := h.Get("Content-Type"); ct != wantType {
				t.Errorf("got Content-Type %q, want %q", ct, wantType)
			}
			if h.Get("X-Kong-Response-Latency") == "" {
				t.Errorf("got no X-Kong-Response-Latency")
			}
		})
	}
	t.Run("text/plain when asked", func(t *testing.T) {
		_, h, body := send(t, s, "GET", "/nowhere", map[string]string{"Accept": "text/plain"})
		want := msgNoRoute + "\nrequest_id: " + h.Get("X-Kong-Request-Id") + "\n"
		if body != want {
			t.Errorf("got %q, want %q", body, want)
		}
	})
}

func TestProxyHTTPSOnlyRoute(t *testing.T) {
	up := newUpstream(t, nil)
	httpsOnly := func(code int) func(*entity.Route) {
		return func(r *entity.Route) { r.Protocols, r.HTTPSRedirectStatusCode = []string{"https"}, code }
	}
	s := startProxy(t, mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{
		testRoute(idA, "s1", paths("/upgrade"), httpsOnly(426)),
		testRoute(idB, "s1", paths("/redirect"), httpsOnly(301)),
	}))
	t.Run("426", func(t *testing.T) {
		status, h, body := send(t, s, "GET", "/upgrade", nil)
		if status != 426 || !strings.Contains(body, msgUseHTTPS) {
			t.Errorf("got %d %q, want 426 %q", status, body, msgUseHTTPS)
		}
		if got := h.Get("Upgrade"); got != "TLS/1.2, HTTP/1.1" {
			t.Errorf("got Upgrade %q, want %q", got, "TLS/1.2, HTTP/1.1")
		}
	})
	t.Run("redirect", func(t *testing.T) {
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Get("http://" + s.Addr().String() + "/redirect/x?a=1")
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		resp.Body.Close()
		want := "https://127.0.0.1/redirect/x?a=1"
		if resp.StatusCode != 301 || resp.Header.Get("Location") != want {
			t.Errorf("got %d %q, want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	})
}

// TestProxyRetries counts connections at an upstream that accepts and
// closes: idempotent requests are retried, POST is not once sent.
func TestProxyRetries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepts atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close()
		}
	}()
	svc := testService(t, "s1", ln.Addr().String(), func(s *entity.Service) { s.Retries = 2 })
	s := startProxy(t, mustSnapshot(t, []entity.Service{svc}, []entity.Route{testRoute(idA, "s1", paths("/"))}))
	tests := []struct {
		method      string
		wantAccepts int64
	}{
		{"GET", 3},
		{"POST", 1},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			before := accepts.Load()
			status, _, _ := send(t, s, tt.method, "/", nil)
			if status != 502 {
				t.Errorf("got status %d, want 502", status)
			}
			waitFor(t, func() bool { return accepts.Load()-before >= tt.wantAccepts })
			if got := accepts.Load() - before; got != tt.wantAccepts {
				t.Errorf("got %d connections, want %d", got, tt.wantAccepts)
			}
		})
	}
}

func TestProxySwap(t *testing.T) {
	up := newUpstream(t, nil)
	svc := testService(t, "s1", up.addr())
	s := startProxy(t, mustSnapshot(t, []entity.Service{svc}, []entity.Route{testRoute(idA, "s1", paths("/old"))}))
	if status, _, _ := send(t, s, "GET", "/old", nil); status != 200 {
		t.Fatalf("got %d, want 200 before swap", status)
	}
	s.Swap(mustSnapshot(t, []entity.Service{svc}, []entity.Route{testRoute(idA, "s1", paths("/new"))}))
	t.Run("new route live", func(t *testing.T) {
		if status, _, _ := send(t, s, "GET", "/new", nil); status != 200 {
			t.Errorf("got %d, want 200", status)
		}
	})
	t.Run("old route gone", func(t *testing.T) {
		if status, _, _ := send(t, s, "GET", "/old", nil); status != 404 {
			t.Errorf("got %d, want 404", status)
		}
	})
	t.Run("upstream connection reused across swap", func(t *testing.T) {
		if got := up.conns.Load(); got != 1 {
			t.Errorf("got %d upstream connections, want 1", got)
		}
	})
}

func TestLatencyHeaderFamily(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen, cfg.LatencyHeaders = "127.0.0.1:0", "grapevine"
	s := New(cfg)
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	_, h, _ := send(t, s, "GET", "/", nil)
	if h.Get("X-Grapevine-Response-Latency") == "" || h.Get("X-Kong-Response-Latency") != "" {
		t.Errorf("got headers %v, want X-Grapevine-Response-Latency only", h)
	}
}

func TestServerLifecycle(t *testing.T) {
	s := startProxy(t, EmptySnapshot())
	t.Run("taken port names proxy_listen", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Listen = s.Addr().String() + " reuseport"
		err := New(cfg).Start(context.Background())
		if err == nil || !strings.Contains(err.Error(), "proxy_listen") {
			t.Errorf("got %v, want an error naming proxy_listen", err)
		}
	})
	t.Run("shutdown is idempotent", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if err := s.Shutdown(context.Background()); err != nil {
				t.Errorf("shutdown %d: got %v, want nil", i, err)
			}
		}
		_, err := net.DialTimeout("tcp", s.Addr().String(), time.Second)
		if err == nil {
			t.Errorf("got a connection after shutdown, want refused")
		}
	})
	t.Run("shutdown before start", func(t *testing.T) {
		if err := New(DefaultConfig()).Shutdown(context.Background()); err != nil {
			t.Errorf("got %v, want nil", err)
		}
	})
}

// closedAddr returns an address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitFor retries cond until it holds or a second has passed.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDebugAccessLog(t *testing.T) {
	up := newUpstream(t, nil)
	var logs strings.Builder
	var mu sync.Mutex
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Logger = zerolog.New(lockedWriter{&mu, &logs}).Level(zerolog.DebugLevel)
	s := New(cfg)
	s.Swap(mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute(idA, "s1", paths("/a"))}))
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	send(t, s, "GET", "/a/x", nil)
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), `"upstream_uri":"/x"`) {
		t.Errorf("got log %q, want an access line with upstream_uri /x", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Shutdown drains: it stops accepting, answers each keep-alive client's
// next request (with Connection: close, so the client reconnects elsewhere)
// instead of closing its connection under a request on its way, closes
// connections left idle, and returns once none is open.
func TestShutdownDrainsKeepAliveClients(t *testing.T) {
	up := newUpstream(t, nil)
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute(idA, "s1", paths("/"))})
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	s := New(cfg)
	s.Swap(snap)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	busy, idle := dialKeepAlive(t, s), dialKeepAlive(t, s)
	for _, c := range []*keepAliveClient{busy, idle} {
		if status, closing := c.get(t); status != 200 || closing {
			t.Fatalf("before: got %d (close %v), want 200 on a kept connection", status, closing)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	began := time.Now()
	go func() { stopped <- s.Shutdown(ctx) }()
	time.Sleep(100 * time.Millisecond) // the drain has begun
	if _, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		t.Error("a new connection was accepted while draining, want it refused")
	}
	if status, closing := busy.get(t); status != 200 || !closing {
		t.Errorf("while draining: got %d (close %v), want 200 with Connection: close", status, closing)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("shutdown did not return")
	}
	if took := time.Since(began); took > drainIdle+5*time.Second {
		t.Errorf("shutdown took %v, want it to end once the idle connection was closed (after %v idle)", took, drainIdle)
	}
	idle.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle.conn.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("the idle connection read %d bytes, %v; want it closed", n, err)
	}
}

type keepAliveClient struct {
	conn net.Conn
	br   *bufio.Reader
}

func dialKeepAlive(t *testing.T, s *Server) *keepAliveClient {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAliveClient{conn: c, br: bufio.NewReader(c)}
}

// get sends GET / on the kept connection and reads the answer.
func (c *keepAliveClient) get(t *testing.T) (status int, closing bool) {
	t.Helper()
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Close
}

// kong.conf's headers decides which of Kong's own headers clients get
// (kong/runloop/handler.lua header_filter: Via, Server, the latency
// headers, X-Kong-Upstream-Status, X-Kong-Request-Id), and
// headers_upstream whether the upstream gets X-Kong-Request-Id.
func TestHeadersKey(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(201) })
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute(idA, "s1", paths("/up"))})
	kong := []string{"Via", "Server", "X-Kong-Upstream-Latency", "X-Kong-Proxy-Latency", "X-Kong-Response-Latency",
		"X-Kong-Request-Id", "X-Kong-Upstream-Status"}
	tests := []struct {
		name       string
		headers    kongheaders.Set
		upstream   kongheaders.Set
		path       string
		want       []string // of kong, the ones present
		wantUpstID bool
	}{
		{"default, proxied", kongheaders.Default, kongheaders.RequestID, "/up",
			[]string{"Via", "Server", "X-Kong-Upstream-Latency", "X-Kong-Proxy-Latency", "X-Kong-Request-Id"}, true},
		{"default, no route", kongheaders.Default, kongheaders.RequestID, "/none",
			[]string{"Server", "X-Kong-Response-Latency", "X-Kong-Request-Id"}, false},
		{"off, proxied", 0, 0, "/up", nil, false},
		{"off, no route", 0, 0, "/none", nil, false},
		{"upstream status only", kongheaders.UpstreamStatus, kongheaders.RequestID, "/up", []string{"X-Kong-Upstream-Status"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startProxyWith(t, snap, func(c *Config) { c.Headers, c.UpstreamHeaders = tt.headers, tt.upstream })
			before := up.count()
			_, hdr, _ := send(t, s, "GET", tt.path, nil)
			var got []string
			for _, name := range kong {
				if hdr.Get(name) != "" {
					got = append(got, name)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got Kong's headers %v, want %v", got, tt.want)
			}
			if tt.headers.Has(kongheaders.UpstreamStatus) && hdr.Get("X-Kong-Upstream-Status") != "201" {
				t.Errorf("X-Kong-Upstream-Status %q, want 201", hdr.Get("X-Kong-Upstream-Status"))
			}
			if up.count() > before {
				if got := up.last(t).Header.Get("X-Kong-Request-Id") != ""; got != tt.wantUpstID {
					t.Errorf("upstream got X-Kong-Request-Id: %v, want %v", got, tt.wantUpstID)
				}
			}
		})
	}
}
