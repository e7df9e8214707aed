package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// Upstreams that misbehave on keep-alive connections: each test puts a raw
// TCP upstream behind a real proxy and checks that no client gets another
// request's answer, no request runs twice and no live request fails.

// Socket states in /proc/net/tcp.
const (
	tcpEstablished = 0x01
	tcpCloseWait   = 0x08 // the peer closed; this end has not
)

// waitProxySocket waits until the proxy's end of the upstream connection c
// (c is the upstream's end) satisfies cond, given its TCP state and the
// count of bytes it received and has not read, as /proc/net/tcp shows
// them. It tells a test that what the upstream sent or a close has reached
// the proxy's socket.
func waitProxySocket(t *testing.T, proxyEnd, upstreamEnd net.Addr, cond func(state, unread int) bool) {
	t.Helper()
	key := procTCPAddr(proxyEnd) + " " + procTCPAddr(upstreamEnd)
	testutil.Eventually(t, 5*time.Second, func() error {
		raw, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(raw), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 || f[1]+" "+f[2] != key {
				continue
			}
			state, _ := strconv.ParseInt(f[3], 16, 32)
			_, rx, _ := strings.Cut(f[4], ":")
			unread, _ := strconv.ParseInt(rx, 16, 64)
			if cond(int(state), int(unread)) {
				return nil
			}
			return fmt.Errorf("proxy socket %s: state %#x, %d bytes unread", key, state, unread)
		}
		return fmt.Errorf("proxy socket %s not found", key)
	})
}

// procTCPAddr writes an IPv4 address as /proc/net/tcp does.
func procTCPAddr(a net.Addr) string {
	ta := a.(*net.TCPAddr)
	ip := ta.IP.To4()
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ta.Port)
}

// testTLSConfig is a server TLS configuration with httptest's certificate.
func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	hs.StartTLS()
	cfg := hs.TLS.Clone()
	hs.Close()
	return cfg
}

// countHeads counts the requests the upstream got whose request line
// starts with prefix.
func (u *rawUpstream) countHeads(prefix string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, h := range u.heads {
		if strings.HasPrefix(h, prefix) {
			n++
		}
	}
	return n
}

func (u *rawUpstream) closedConns() []net.Addr {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]net.Addr(nil), u.closed...)
}

func bodyOf(path string) string {
	return strings.TrimPrefix(path, "/")
}

// answerPath answers 200 with the request's path (less its slash) as body.
func answerPath(head string) (string, bool) {
	line, _, _ := strings.Cut(head, "\r\n")
	parts := strings.Fields(line)
	body := bodyOf(parts[1])
	return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body, false
}

// noRetries sets a service's retries to 0, so that only the proxy's own
// handling of dead connections can save a request.
func noRetries(s *entity.Service) { s.Retries = 0 }

// An upstream writes a second answer nobody asked for 300 ms after the
// first, on the idle connection. The next request must not get it: the
// proxy checks an idle connection before reuse, as nginx does
// (src/http/modules/ngx_http_upstream_keepalive_module.c,
// ngx_http_upstream_keepalive_close_handler), over TLS too.
func TestUpstreamUnsolicitedAnswer(t *testing.T) {
	for _, protocol := range []string{"http", "https"} {
		t.Run(protocol, func(t *testing.T) {
			written := make(chan struct{})
			u := &rawUpstream{answer: answerPath, after: func(c net.Conn, conn, req int) bool {
				if conn == 1 && req == 1 {
					time.Sleep(300 * time.Millisecond)
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nsomeone-elses")
					close(written)
				}
				return true
			}}
			var tlsConfig *tls.Config
			if protocol == "https" {
				tlsConfig = testTLSConfig(t)
			}
			up := startRawUpstream(t, u, tlsConfig)
			svc := testService(t, "s1", up.addr(), func(s *entity.Service) { s.Protocol = protocol })
			s := startProxy(t, mustSnapshot(t, []entity.Service{svc}, []entity.Route{testRoute(idA, "s1", paths("/"), noStrip)}))

			if status, _, body := send(t, s, "GET", "/first", nil); status != 200 || body != "first" {
				t.Fatalf("first request: got %d %q, want 200 \"first\"", status, body)
			}
			<-written
			proxyEnd, upstreamEnd := firstConnAddrs(t, up)
			waitProxySocket(t, proxyEnd, upstreamEnd, func(_, unread int) bool { return unread > 0 })
			for _, path := range []string{"/second", "/third"} {
				if status, _, body := send(t, s, "GET", path, nil); status != 200 || body != bodyOf(path) {
					t.Errorf("GET %s: got %d %q, want 200 %q", path, status, body, bodyOf(path))
				}
			}
			// The poisoned connection is replaced once; its replacement,
			// checked the same way, stays in use.
			if got := up.accepts.Load(); got != 2 {
				t.Errorf("got %d upstream connections, want 2", got)
			}
		})
	}
}

// firstConnAddrs returns the proxy's and the upstream's end of the
// upstream's first connection, which must still be open.
func firstConnAddrs(t *testing.T, up *rawUpstream) (proxyEnd, upstreamEnd net.Addr) {
	t.Helper()
	up.mu.Lock()
	defer up.mu.Unlock()
	for c := range up.conns {
		return c.RemoteAddr(), c.LocalAddr()
	}
	t.Fatalf("upstream has no open connection")
	return nil, nil
}

// Bytes the framing of an answer does not cover (a body to HEAD, more than
// Content-Length) arrive after the proxy read the answer. They must not be
// read as the next answer: before, the next POST got 502 though the
// upstream ran it, and a GET was sent twice.
func TestUpstreamBytesBeyondFraming(t *testing.T) {
	tests := []struct {
		name   string
		method string // of the first request
		answer string
		extra  string // sent once the client has the answer
	}{
		{"body to HEAD", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "hello"},
		{"bytes after Content-Length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "garbage\r\n\r\n"},
		{"bytes after a chunked body", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nwrong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answered, written := make(chan struct{}), make(chan struct{})
			u := &rawUpstream{
				answer: func(head string) (string, bool) {
					if strings.HasPrefix(head, tt.method+" /first ") {
						return tt.answer, false
					}
					return answerPath(head)
				},
				after: func(c net.Conn, conn, req int) bool {
					if conn == 1 && req == 1 {
						<-answered
						io.WriteString(c, tt.extra)
						close(written)
					}
					return true
				},
			}
			up := startRawUpstream(t, u, nil)
			s := startProxy(t, mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())},
				[]entity.Route{testRoute(idA, "s1", paths("/"), noStrip)}))

			status, _, _ := send(t, s, tt.method, "/first", nil)
			close(answered) // before any Fatalf: the upstream's cleanup waits for it
			if status != 200 {
				t.Fatalf("first request: got %d, want 200", status)
			}
			<-written
			proxyEnd, upstreamEnd := firstConnAddrs(t, up)
			waitProxySocket(t, proxyEnd, upstreamEnd, func(_, unread int) bool { return unread > 0 })
			for _, method := range []string{"POST", "GET"} {
				status, _, body := send(t, s, method, "/next", nil)
				if status != 200 || body != "next" {
					t.Errorf("%s: got %d %q, want 200 \"next\"", method, status, body)
				}
				if n := up.countHeads(method + " /next "); n != 1 {
					t.Errorf("%s: upstream got it %d times, want once", method, n)
				}
			}
		})
	}
}

// An upstream that closes idle keep-alive connections after a while (as
// gunicorn and Node do) must not make the next POST fail: the proxy sees
// the close before it reuses the connection.
func TestUpstreamClosesIdleConnections(t *testing.T) {
	const idle = 200 * time.Millisecond
	u := &rawUpstream{answer: answerPath, after: func(c net.Conn, _, _ int) bool {
		c.SetReadDeadline(time.Now().Add(idle)) // the idle timeout; the read then fails and the connection ends
		return true
	}}
	up := startRawUpstream(t, u, nil)
	s := startProxy(t, mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr(), noRetries)},
		[]entity.Route{testRoute(idA, "s1", paths("/"), noStrip)}))
	for i := range 3 {
		path := "/post" + strconv.Itoa(i)
		if status, _, body := send(t, s, "POST", path, nil); status != 200 || body != bodyOf(path) {
			t.Fatalf("POST %s: got %d %q, want 200 %q", path, status, body, bodyOf(path))
		}
		// Wait for the upstream's close to reach the proxy's idle connection.
		var closed []net.Addr
		testutil.Eventually(t, 5*time.Second, func() error {
			if closed = up.closedConns(); len(closed) <= i {
				return fmt.Errorf("got %d connections closed by the upstream, want %d", len(closed), i+1)
			}
			return nil
		})
		waitProxySocket(t, closed[i], up.ln.Addr(), func(state, _ int) bool { return state == tcpCloseWait })
	}
	if got := up.countHeads("POST "); got != 3 {
		t.Errorf("upstream got %d POSTs, want 3", got)
	}
}

// When the upstream closes a reused connection after the request reached
// it and before answering (the idle timeout racing the request), the
// request goes once more on a new connection if that is safe, whatever the
// service's retries: always for GET, never for a POST the upstream may
// have run. nginx does not count a failed try on a cached connection
// (src/http/ngx_http_upstream.c, ngx_http_upstream_next: peer.cached),
// and retries POST only with proxy_next_upstream non_idempotent; Kong keeps
// nginx's default unless a plugin changes it (kong/runloop/upstream_retry.lua).
func TestUpstreamClosesReusedConnection(t *testing.T) {
	tests := []struct {
		method      string
		wantStatus  int
		wantBody    string
		wantSecond  int // times the upstream got the second request
		wantAccepts int64
	}{
		{"GET", 200, "second", 2, 2},
		{"POST", 502, "", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			u := &rawUpstream{answerConn: func(head string, conn, req int) (string, bool) {
				if conn == 1 && req == 2 {
					return "", true // read the request, close without answering
				}
				return answerPath(head)
			}}
			up := startRawUpstream(t, u, nil)
			s := startProxy(t, mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr(), noRetries)},
				[]entity.Route{testRoute(idA, "s1", paths("/"), noStrip)}))
			if status, _, _ := send(t, s, tt.method, "/first", nil); status != 200 {
				t.Fatalf("first request: got %d, want 200", status)
			}
			status, _, body := send(t, s, tt.method, "/second", nil)
			if status != tt.wantStatus || (tt.wantBody != "" && body != tt.wantBody) {
				t.Errorf("got %d %q, want %d %q", status, body, tt.wantStatus, tt.wantBody)
			}
			if got := up.countHeads(tt.method + " /second "); got != tt.wantSecond {
				t.Errorf("upstream got the second request %d times, want %d", got, tt.wantSecond)
			}
			if got := up.accepts.Load(); got != tt.wantAccepts {
				t.Errorf("got %d upstream connections, want %d", got, tt.wantAccepts)
			}
		})
	}
}

// endlessBody writes head and then body pieces until the proxy stops
// reading and closes; closed is set when a write fails. Without pieces it
// waits for the proxy to close.
func endlessBody(head, piece string, closed *atomic.Bool) func(net.Conn, int, int) bool {
	return func(c net.Conn, _, _ int) bool {
		if _, err := io.WriteString(c, head); err != nil {
			closed.Store(true)
			return false
		}
		if piece == "" {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, c); err == nil {
				closed.Store(true)
			}
			return false
		}
		for {
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, piece); err != nil {
				closed.Store(true)
				return false
			}
		}
	}
}

// With response_buffering on, the proxy buffers an upstream's answer of
// unknown length; one that outgrows maxResponseBody is not refused but
// streams on after what was held, as nginx spills what its buffers cannot
// hold to a temporary file and passes it on (proxy_max_temp_file_size,
// kong/templates/nginx_kong.lua keeps nginx's default). The proxy's memory
// stays bounded (it grew to 1.2 GB before the cap), and an answer that
// never ends costs a connection the client can hang up on.
func TestUnknownLengthAnswerOverTheBufferStreams(t *testing.T) {
	const testMaxBody = 4 << 20 // maxResponseBody takes seconds to fill on a busy machine
	piece := strings.Repeat("x", 32<<10)
	const pieces = 3 * testMaxBody / (32 << 10)
	chunked := "8000\r\n" + piece + "\r\n"
	oneBigChunk := strconv.FormatInt(3*testMaxBody, 16) + "\r\n"
	tests := []struct {
		name, head, piece, end string
		pieces                 int
	}{
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunked, "0\r\n\r\n", pieces},
		{"until close", "HTTP/1.0 200 OK\r\n\r\n", piece, "", pieces},
		{"one chunk over the cap", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + oneBigChunk, piece, "\r\n0\r\n\r\n", pieces},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &rawUpstream{answerConn: func(head string, conn, req int) (string, bool) {
				if conn == 1 && req == 1 {
					return "", false // after writes the answer
				}
				return answerPath(head)
			}}
			u.after = func(c net.Conn, conn, req int) bool {
				if conn != 1 || req != 1 {
					return true
				}
				io.WriteString(c, tt.head)
				for range tt.pieces {
					if _, err := io.WriteString(c, tt.piece); err != nil {
						return false
					}
				}
				io.WriteString(c, tt.end)
				return tt.end != ""
			}
			up := startRawUpstream(t, u, nil)
			svc := testService(t, "s1", up.addr(), noRetries)
			s := startProxyPrepared(t, mustSnapshot(t, []entity.Service{svc},
				[]entity.Route{testRoute(idA, "s1", paths("/"), noStrip)}), func(*Config) {}, func(s *Server) { s.pool.maxBody = testMaxBody })
			status, _, body := send(t, s, "GET", "/big", nil)
			if want := strings.Repeat("x", pieces*len(piece)); status != 200 || body != want {
				t.Fatalf("got %d with %d bytes, want 200 with all %d", status, len(body), len(want))
			}
			if status, _, body := send(t, s, "GET", "/next", nil); status != 200 || body != "next" {
				t.Errorf("next request: got %d %.40q, want 200 \"next\"", status, body)
			}
		})
	}
	t.Run("endless", func(t *testing.T) {
		var closed atomic.Bool
		u := &rawUpstream{answerConn: func(head string, conn, _ int) (string, bool) { return "", false }}
		u.after = endlessBody("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunked, &closed)
		up := startRawUpstream(t, u, nil)
		s := startProxyPrepared(t, mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr(), noRetries)},
			[]entity.Route{testRoute(idA, "s1", paths("/"), noStrip)}), func(*Config) {}, func(s *Server) { s.pool.maxBody = testMaxBody })
		resp, err := http.Get("http://" + s.Addr().String() + "/endless")
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.CopyN(io.Discard, resp.Body, 2*testMaxBody)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("got %d and %d bytes (%v), want 200 and %d bytes", resp.StatusCode, n, err, 2*testMaxBody)
		}
		testutil.Eventually(t, 10*time.Second, func() error {
			if !closed.Load() {
				return errors.New("upstream connection still open after the client left")
			}
			return nil
		})
	})
}

// An answer that declares a large Content-Length and sends little must
// cost the proxy what arrived, not what was declared: before, each such
// answer allocated its whole declared length at once.
func TestUpstreamDeclaredLengthNotAllocated(t *testing.T) {
	const clients = 8
	release := make(chan struct{})
	var sent sync.WaitGroup
	sent.Add(clients)
	u := &rawUpstream{
		answer: func(string) (string, bool) {
			return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(maxResponseBody) + "\r\n\r\nx", false
		},
		after: func(net.Conn, int, int) bool {
			sent.Done()
			<-release
			return false // closes: the answers end early
		},
	}
	up := startRawUpstream(t, u, nil)
	s := startProxy(t, mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr(), noRetries)},
		[]entity.Route{testRoute(idA, "s1", paths("/"), noStrip)}))

	before := liveHeap()
	statuses := make(chan int, clients)
	for range clients {
		go func() {
			resp, err := http.Get("http://" + s.Addr().String() + "/")
			if err != nil {
				statuses <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	sent.Wait()
	// The first byte of each body has been written; let it reach the proxy.
	for _, c := range up.openConns() {
		waitProxySocket(t, c.RemoteAddr(), c.LocalAddr(), func(_, unread int) bool { return unread == 0 })
	}
	during := liveHeap()
	close(release)
	for range clients {
		if status := <-statuses; status != 502 {
			t.Errorf("got status %d for a body that ended early, want 502", status)
		}
	}
	if grew := int64(during) - int64(before); grew > 32<<20 {
		t.Errorf("live heap grew %d MiB with %d answers of 1 byte in flight, want far less than %d MiB declared",
			grew>>20, clients, clients*maxResponseBody>>20)
	}
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func (u *rawUpstream) openConns() []net.Conn {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []net.Conn
	for c := range u.conns {
		out = append(out, c)
	}
	return out
}

// The proxy reads chunked bodies itself (to bound them); it must be as
// strict as RFC 9112 §7.1 and fasthttp, which it replaces there.
func TestReadChunkedBody(t *testing.T) {
	const limit = 16
	tests := []struct {
		name     string
		wire     string
		wantBody string
		wantErr  error // nil, errBadChunk, errResponseTooLarge or io.ErrUnexpectedEOF
	}{
		{"chunks and trailer", "3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n", "abcde", nil},
		{"upper-case hex and extension", "A;name=value\r\n0123456789\r\n0\r\n\r\n", "0123456789", nil},
		{"whitespace before extension", "1 ;x\r\nz\r\n0\r\n\r\n", "z", nil},
		{"leading zeros", "0002\r\nok\r\n0\r\n\r\n", "ok", nil},
		{"exactly the limit", "10\r\n0123456789abcdef\r\n0\r\n\r\n", "0123456789abcdef", nil},
		{"over the limit in one chunk", "11\r\n", "", errResponseTooLarge},
		{"over the limit in total", "a\r\n0123456789\r\n7\r\n0123456\r\n", "", errResponseTooLarge},
		{"size that overflows int", "ffffffffffffffffffffff\r\n", "", errResponseTooLarge},
		{"bare LF after size", "3\nabc\r\n0\r\n\r\n", "", errBadChunk},
		{"no size", "\r\nabc\r\n0\r\n\r\n", "", errBadChunk},
		{"junk after size", "3x\r\nabc\r\n0\r\n\r\n", "", errBadChunk},
		{"negative size", "-3\r\nabc\r\n0\r\n\r\n", "", errBadChunk},
		{"CR inside extension", "3;a\rb\r\nabc\r\n0\r\n\r\n", "", errBadChunk},
		{"data longer than its size", "3\r\nabcd\r\n0\r\n\r\n", "", errBadChunk},
		{"ends inside data", "5\r\nab", "", io.ErrUnexpectedEOF},
		{"ends before the last chunk", "3\r\nabc\r\n", "", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp fasthttp.Response
			resp.Header.SetContentLength(-1)
			br := bufio.NewReader(strings.NewReader(tt.wire))
			err := readBody(br, &resp, limit)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("got %v, want body %q", err, tt.wantBody)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			case err == nil && string(resp.Body()) != tt.wantBody:
				t.Fatalf("got body %q, want %q", resp.Body(), tt.wantBody)
			case err == nil && br.Buffered() != 0:
				t.Fatalf("got %d bytes left after the body, want none", br.Buffered())
			}
		})
	}
}

// A request that failed on a reused connection before any answer arrived
// is marked so, with whether any of it reached the socket: a request the
// upstream cannot have seen may go again whatever its method.
func TestStaleConnectionError(t *testing.T) {
	tests := []struct {
		name       string
		peer       func(t *testing.T, peer net.Conn) // how the upstream ends the connection
		wantUnsent bool
	}{
		{"reset before the request", func(t *testing.T, peer net.Conn) {
			peer.(*net.TCPConn).SetLinger(0)
			proxyEnd, upstreamEnd := peer.RemoteAddr(), peer.LocalAddr()
			peer.Close()
			// The reset has arrived once the proxy's socket is gone from
			// the table of connections.
			testutil.Eventually(t, 5*time.Second, func() error {
				raw, err := os.ReadFile("/proc/net/tcp")
				if err != nil {
					return err
				}
				if strings.Contains(string(raw), procTCPAddr(proxyEnd)+" "+procTCPAddr(upstreamEnd)) {
					return errors.New("proxy socket still open")
				}
				return nil
			})
		}, true},
		{"closed after reading the request", func(t *testing.T, peer net.Conn) {
			go func() {
				readRawRequest(bufio.NewReader(peer))
				peer.Close()
			}()
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, peer := tcpPair(t)
			conn := wrapUpstreamConn(c, time.Millisecond)
			cc := &upstreamConn{Conn: conn, sock: socketOf(conn), reused: true}
			tt.peer(t, peer)
			client := &upstreamClient{key: clientKey{read: 5 * time.Second, write: 5 * time.Second}, maxBody: maxResponseBody}
			var resp fasthttp.Response
			_, err := client.exchange(cc, time.Now(), []byte("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), nil, false, false, &resp)
			var stale *staleConnError
			if !errors.As(err, &stale) {
				t.Fatalf("got %v, want a staleConnError", err)
			}
			if stale.unsent != tt.wantUnsent {
				t.Errorf("got unsent %v, want %v", stale.unsent, tt.wantUnsent)
			}
		})
	}
}

// A failure after the answer's header arrived is not tried again, even for
// a GET with retries left: nginx's proxy_next_upstream covers errors up to
// the response header only (Kong's default proxy_next_upstream).
func TestUpstreamBodyFailureIsNotRetried(t *testing.T) {
	up := newRawUpstream(t, func(string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", true // closes short of its length
	})
	svc := testService(t, "s1", up.addr()) // retries 5
	s := startProxy(t, mustSnapshot(t, []entity.Service{svc}, []entity.Route{testRoute(idA, "s1", paths("/"))}))
	if status, _, _ := send(t, s, "GET", "/short", nil); status != 502 {
		t.Fatalf("got %d, want 502 for an answer cut short", status)
	}
	up.mu.Lock()
	asked := len(up.heads)
	up.mu.Unlock()
	if asked != 1 {
		t.Errorf("the upstream was asked %d times, want once", asked)
	}
}

// A reused connection whose answer fails after it began (here: the
// connection breaks inside a chunked body) is not a stale connection: the request is not sent
// again, on a new connection or as one of the service's retries. The
// socket's byte counts tell the two apart.
func TestReusedConnectionBodyFailureIsNotRetried(t *testing.T) {
	var asked atomic.Int64
	chunk := []byte(strings.Repeat("x", 64<<10))
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/endless" {
			io.WriteString(w, "ok")
			return
		}
		asked.Add(1)
		for range 3 {
			w.Write(chunk)
			w.(http.Flusher).Flush()
		}
		panic(http.ErrAbortHandler) // the connection breaks inside the chunked body
	})
	svc := testService(t, "s1", up.addr()) // retries 5
	s := startProxyPrepared(t, mustSnapshot(t, []entity.Service{svc}, []entity.Route{testRoute(idA, "s1", paths("/"), noStrip)}),
		func(*Config) {}, func(s *Server) { s.pool.maxBody = 1 << 20 })
	send(t, s, "GET", "/warm", nil) // leaves a pooled connection for the next request
	if status, _, _ := send(t, s, "GET", "/endless", nil); status != 502 {
		t.Fatalf("got %d, want 502", status)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the upstream was asked %d times, want once", n)
	}
}
