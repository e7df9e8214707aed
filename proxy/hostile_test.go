package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// Tests in this file act as hostile or broken clients with raw bytes on
// real sockets. Where nginx refuses a request before Kong runs, the answer
// goes through Kong's error handler (kong/error_handlers.lua, error_page
// in kong/templates/nginx_kong.lua): the status and Kong's message.

// echoProxy starts an upstream that answers with the request body and a
// proxy in front of it with one route for every path, on host "a.test"
// and on any host under /any.
func echoProxy(t *testing.T, configure func(*Config)) (*Server, *upstream) {
	t.Helper()
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Write(body)
	})
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{
		testRoute("r1", "s1", hosts("a.test")),
		testRoute("r2", "s1", paths("/any")),
	})
	return startProxyWith(t, snap, configure), up
}

// rawConn dials the proxy.
func rawConn(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawResponse writes raw to a new connection and reads one response.
func rawResponse(t *testing.T, s *Server, raw string) (*http.Response, string) {
	t.Helper()
	c := rawConn(t, s)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	return readClientResponse(t, c)
}

func readClientResponse(t *testing.T, c net.Conn) (*http.Response, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func TestRefusedRequests(t *testing.T) {
	s, _ := echoProxy(t, func(c *Config) { c.MaxBodySize = 1000 })
	big := strings.Repeat("x", 1001)
	chunkedBig := "3e9\r\n" + big + "\r\n0\r\n\r\n"
	tests := []struct {
		name     string
		raw      string
		wantCode int
		wantBody string // a part of the body
	}{
		// nginx refuses TRACE itself (ngx_http_core_module) and CONNECT
		// (since 1.21.1) with 405.
		{"TRACE", "TRACE /any HTTP/1.1\r\nHost: a.test\r\n\r\n", 405, "Method not allowed"},
		{"CONNECT", "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n", 405, "Method not allowed"},
		{"HTTP/2.0 on the HTTP/1 listener", "GET /any HTTP/2.0\r\nHost: a.test\r\n\r\n", 505, ""},
		{"HTTP/1.2", "GET /any HTTP/1.2\r\nHost: a.test\r\n\r\n", 505, ""},
		{"HTTP/3.0", "GET /any HTTP/3.0\r\nHost: a.test\r\n\r\n", 505, ""},
		// RFC 9112 §5.1: whitespace between a field name and the colon is 400.
		{"space before colon", "GET /any HTTP/1.1\r\nHost: a.test\r\nX-Foo : 1\r\n\r\n", 400, "Bad request"},
		{"space inside a name", "GET /any HTTP/1.1\r\nHost: a.test\r\nX Foo: 1\r\n\r\n", 400, "Bad request"},
		{"declared body over the limit", "POST /any HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1001\r\n\r\n" + big, 413, "Payload too large"},
		{"declared body over the limit, unrouted", "POST /nowhere HTTP/1.1\r\nHost: b.test\r\nContent-Length: 1001\r\n\r\n" + big, 413, "Payload too large"},
		{"chunked body over the limit", "POST /any HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedBig, 413, "Payload too large"},
		{"body at the limit", "POST /any HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n\r\n" + big[:1000], 200, big[:1000]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawResponse(t, s, tt.raw)
			if resp.StatusCode != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("got %d %q, want %d with %q", resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
			if tt.wantCode >= 400 && !resp.Close {
				t.Errorf("got a kept connection after %d, want it closed", tt.wantCode)
			}
		})
	}
}

func TestExpectContinue(t *testing.T) {
	s, _ := echoProxy(t, func(c *Config) { c.MaxBodySize = 1000 })
	t.Run("over the limit: 413 without 100 Continue", func(t *testing.T) {
		c := rawConn(t, s)
		io.WriteString(c, "POST /any HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
		resp, body := readClientResponse(t, c)
		if resp.StatusCode != 413 || !strings.Contains(body, "Payload too large") {
			t.Fatalf("got %d %q, want 413 Payload too large first", resp.StatusCode, body)
		}
	})
	t.Run("within the limit: 100 Continue, then the answer", func(t *testing.T) {
		c := rawConn(t, s)
		io.WriteString(c, "POST /any HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		br := bufio.NewReader(c)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("got %q, %v; want 100 Continue", line, err)
		}
		io.WriteString(c, "hello")
		br.ReadString('\n') // the blank line after 100 Continue
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("read response: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "hello" {
			t.Fatalf("got %d %q, want 200 hello", resp.StatusCode, body)
		}
	})
}

// An absolute-form target names the host (RFC 9112 §3.2.2): it routes,
// not the Host header.
func TestAbsoluteFormRoutesOnItsAuthority(t *testing.T) {
	s, up := echoProxy(t, func(*Config) {})
	resp, _ := rawResponse(t, s, "GET http://a.test/p HTTP/1.1\r\nHost: b.test\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("got %d, want 200 through the route on a.test", resp.StatusCode)
	}
	if got := up.last(t); got.URI != "/p" || got.Header.Get("X-Forwarded-Host") != "a.test" {
		t.Errorf("got uri %q, X-Forwarded-Host %q; want /p and a.test", got.URI, got.Header.Get("X-Forwarded-Host"))
	}
	resp, _ = rawResponse(t, s, "GET http://b.test/p HTTP/1.1\r\nHost: a.test\r\n\r\n")
	if resp.StatusCode != 404 {
		t.Errorf("got %d for authority b.test with Host a.test, want 404", resp.StatusCode)
	}
}

// A declared length is never allocated ahead of the bytes: twenty clients
// that announce 64 MiB and send one byte used to take 1.3 GB.
func TestDeclaredLengthIsNotAllocated(t *testing.T) {
	s, _ := echoProxy(t, func(*Config) {})
	before := heapInUse()
	const clients = 20
	for range clients {
		c := rawConn(t, s)
		io.WriteString(c, "POST /any HTTP/1.1\r\nHost: a.test\r\nContent-Length: 67108864\r\n\r\nx")
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := s.Stats().ConnectionsActive; n < clients {
			return fmt.Errorf("%d connections open, want %d", n, clients)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // let the handlers reach their body reads
	if grown := heapInUse() - before; grown > 32<<20 {
		t.Fatalf("heap grew by %d MiB for %d clients, want well under one declared body", grown>>20, clients)
	}
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// Slow clients are dropped after nginx's client timeouts while others are
// served: one that sends nothing, one that trickles its headers, one that
// stops sending its body, one that stops reading.
func TestSlowClientsAreDropped(t *testing.T) {
	const timeout = 300 * time.Millisecond
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 32<<20))
	})
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute("r1", "s1", paths("/"))})
	s := startProxyWith(t, snap, func(c *Config) {
		c.ClientHeaderTimeout, c.ClientBodyTimeout, c.SendTimeout = timeout, timeout, timeout
	})

	t.Run("sends nothing", func(t *testing.T) {
		c := rawConn(t, s)
		waitClosed(t, c, nil)
	})
	t.Run("trickles its headers", func(t *testing.T) {
		c := rawConn(t, s)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for _, b := range []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 0123456789012345678901234567890123456789") {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
			}
		}()
		waitClosed(t, c, func() { assertServed(t, s) })
	})
	t.Run("stops sending its body", func(t *testing.T) {
		c := rawConn(t, s)
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
		resp, body := readClientResponse(t, c)
		if resp.StatusCode != 408 || !strings.Contains(body, "Request timeout") {
			t.Fatalf("got %d %q, want 408 Request timeout", resp.StatusCode, body)
		}
	})
	t.Run("stops reading", func(t *testing.T) {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections() // assertServed's
		c := rawConn(t, s).(*net.TCPConn)
		_ = c.SetReadBuffer(4096)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		testutil.Eventually(t, 10*time.Second, func() error {
			if n := s.Stats().ConnectionsActive; n != 0 {
				return fmt.Errorf("%d client connections still open, want the stalled one dropped", n)
			}
			return nil
		})
	})
}

// waitClosed waits until the proxy closes c, calling during (when set)
// while it waits.
func waitClosed(t *testing.T, c net.Conn, during func()) {
	t.Helper()
	if during != nil {
		during()
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after 10s, want it closed by the client timeouts")
	}
}

// assertServed checks that an ordinary request gets its answer.
func assertServed(t *testing.T, s *Server) {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr().String() + "/")
	if err != nil {
		t.Fatalf("ordinary request: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("ordinary request: got %d, want 200", resp.StatusCode)
	}
}

// At the connection cap the proxy closes the connections idle longest, as
// nginx reuses idle connections when worker_connections run out; when
// none is idle, new connections are closed and the busy ones kept.
func TestConnectionCap(t *testing.T) {
	const limit = 8
	s, _ := echoProxy(t, func(c *Config) { c.MaxConnections = limit })
	waitOpen := func(want int64) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, func() error {
			if n := s.Stats().ConnectionsActive; n != want {
				return fmt.Errorf("%d connections open, want %d", n, want)
			}
			return nil
		})
	}
	t.Run("idle connections make room", func(t *testing.T) {
		idle := make([]net.Conn, limit)
		for i := range idle {
			idle[i] = rawConn(t, s)
		}
		waitOpen(limit)
		resp, body := rawResponse(t, s, "GET /any HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("got %d %q, want 200 with idle connections closed for it", resp.StatusCode, body)
		}
		waitClosed(t, idle[0], nil) // the oldest went first
		if n := s.Stats().ConnectionsActive; n > limit {
			t.Errorf("got %d connections open, want at most %d", n, limit)
		}
		for _, c := range idle {
			c.Close()
		}
		waitOpen(0)
	})
	t.Run("busy connections are kept", func(t *testing.T) {
		busy := make([]net.Conn, limit)
		for i := range busy {
			busy[i] = rawConn(t, s)
			io.WriteString(busy[i], "GET /any HTTP/1.1\r\nHost: a.test\r\n") // headers not finished
		}
		waitOpen(limit)
		testutil.Eventually(t, 10*time.Second, func() error {
			if n := idleConns(s); n != 0 {
				return fmt.Errorf("%d connections still wait for their first byte, want all busy", n)
			}
			return nil
		})
		extra := rawConn(t, s)
		waitClosed(t, extra, nil)
		io.WriteString(busy[0], "\r\n")
		if resp, _ := readClientResponse(t, busy[0]); resp.StatusCode != 200 {
			t.Errorf("got %d for a busy connection's request, want 200", resp.StatusCode)
		}
		if got := s.Stats().ConnectionsAccepted; got < limit+1 {
			t.Errorf("got %d connections accepted, want the refused one counted", got)
		}
	})
}

// idleConns counts the proxy's client connections waiting for a request.
func idleConns(s *Server) int {
	s.conns.mu.Lock()
	defer s.conns.mu.Unlock()
	n := 0
	for cc := range s.conns.conns {
		if cc.idleSince.Load() != 0 {
			n++
		}
	}
	return n
}

// nginx's large_client_header_buffers (4 8k): a longer request line is
// 414, a longer header line 400 "Request header or cookie too large"
// (494 turned into 400 by kong/error_handlers.lua).
func TestLongRequestLines(t *testing.T) {
	s, _ := echoProxy(t, func(*Config) {})
	long := strings.Repeat("a", 8200)
	tests := []struct {
		name, raw string
		wantCode  int
		wantBody  string
	}{
		{"request line over 8k", "GET /any/" + long + " HTTP/1.1\r\nHost: a.test\r\n\r\n", 414, "URI too long"},
		{"header line over 8k", "GET /any HTTP/1.1\r\nHost: a.test\r\nX-Long: " + long + "\r\n\r\n", 400, "Request header or cookie too large"},
		{"headers over 32k in all", "GET /any HTTP/1.1\r\nHost: a.test\r\n" + strings.Repeat("X-Many: "+long[:4000]+"\r\n", 9) + "\r\n", 400, "Request header or cookie too large"},
		{"request line under 8k", "GET /any/" + long[:8000] + " HTTP/1.1\r\nHost: a.test\r\n\r\n", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawResponse(t, s, tt.raw)
			if resp.StatusCode != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("got %d %q, want %d with %q", resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}
