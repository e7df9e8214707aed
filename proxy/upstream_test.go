package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// rawUpstream is a TCP upstream that records each request exactly as it
// arrived (head and body) and answers with whatever answer returns.
type rawUpstream struct {
	ln      net.Listener
	accepts atomic.Int64
	answer  func(head string) (response string, closeAfter bool)
	// answerConn, when set, answers instead of answer, knowing the
	// connection and request counts (from 1).
	answerConn func(head string, conn, req int) (response string, closeAfter bool)
	// after, when set, runs on the connection after each answer is
	// written; conn and req count connections and their requests from 1.
	// It returns false to end the connection.
	after func(c net.Conn, conn, req int) bool
	wg    sync.WaitGroup // the accept loop and one goroutine per connection

	mu     sync.Mutex // guards the fields below
	heads  []string
	bodies [][]byte
	conns  map[net.Conn]bool // open connections, closed at cleanup
	closed []net.Addr        // the proxy's end of each connection the upstream ended
}

func newRawUpstream(t *testing.T, answer func(head string) (string, bool)) *rawUpstream {
	t.Helper()
	return startRawUpstream(t, &rawUpstream{answer: answer}, nil)
}

// startRawUpstream serves u on a new loopback port, over TLS when
// tlsConfig is set, until the test ends.
func startRawUpstream(t *testing.T, u *rawUpstream, tlsConfig *tls.Config) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	u.ln, u.conns = ln, make(map[net.Conn]bool)
	u.wg.Add(1)
	go u.serve()
	t.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		for c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

func (u *rawUpstream) addr() string { return u.ln.Addr().String() }

func (u *rawUpstream) serve() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		n := u.accepts.Add(1)
		u.mu.Lock()
		u.conns[c] = true
		u.mu.Unlock()
		u.wg.Add(1)
		go u.serveConn(c, int(n))
	}
}

func (u *rawUpstream) serveConn(c net.Conn, conn int) {
	defer u.wg.Done()
	defer func() {
		c.Close()
		u.mu.Lock()
		delete(u.conns, c)
		u.closed = append(u.closed, c.RemoteAddr())
		u.mu.Unlock()
	}()
	br := bufio.NewReader(c)
	for req := 1; ; req++ {
		head, body, err := readRawRequest(br)
		if err != nil {
			return
		}
		u.mu.Lock()
		u.heads, u.bodies = append(u.heads, head), append(u.bodies, body)
		u.mu.Unlock()
		var resp string
		var closeAfter bool
		if u.answerConn != nil {
			resp, closeAfter = u.answerConn(head, conn, req)
		} else {
			resp, closeAfter = u.answer(head)
		}
		if _, err := io.WriteString(c, resp); err != nil || closeAfter {
			return
		}
		if u.after != nil && !u.after(c, conn, req) {
			return
		}
	}
}

// readRawRequest reads one request: the head up to the blank line, then a
// Content-Length body.
func readRawRequest(br *bufio.Reader) (head string, body []byte, err error) {
	var sb strings.Builder
	length := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", nil, err
		}
		sb.WriteString(line)
		if line == "\r\n" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body = make([]byte, length)
	_, err = io.ReadFull(br, body)
	return sb.String(), body, err
}

func (u *rawUpstream) last(t *testing.T) (string, []byte) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.heads) == 0 {
		t.Fatalf("upstream got no request")
	}
	return u.heads[len(u.heads)-1], u.bodies[len(u.bodies)-1]
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func answerOK(string) (string, bool) { return okResponse, false }

// rawExchange sends a raw request on a new connection and reads one
// response.
func rawExchange(t *testing.T, s *Server, request string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp
}

// headerLines are a raw head's header lines, without the request line.
func headerLines(head string) []string {
	lines := strings.Split(strings.TrimSuffix(head, "\r\n\r\n"), "\r\n")
	return lines[1:]
}

func TestUpstreamRequestWire(t *testing.T) {
	up := newRawUpstream(t, answerOK)
	s := startProxy(t, mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())},
		[]entity.Route{testRoute(idA, "s1", paths("/"), noStrip)}))
	tests := []struct {
		name        string
		request     string
		wantLine    string   // the upstream request line
		wantInOrder []string // header lines that must arrive, in this order
		wantAbsent  []string // header names that must not arrive
		wantBody    string
	}{
		{
			name: "client headers in order, repeated ones kept",
			request: "GET /a HTTP/1.1\r\nHost: h\r\nX-B: 2\r\nCookie: a=1; b\r\nX-A: 1\r\n" +
				"X-A: 3\r\nAccept: */*\r\n\r\n",
			wantLine:    "GET /a HTTP/1.1",
			wantInOrder: []string{"Host: " + up.addr(), "X-B: 2", "Cookie: a=1; b", "X-A: 1", "X-A: 3", "Accept: */*"},
			wantAbsent:  []string{"Content-Length", "Connection"},
		},
		{
			name: "hop-by-hop headers dropped",
			request: "GET /a HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nKeep-Alive: timeout=5\r\n" +
				"Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\n\r\n",
			wantLine:   "GET /a HTTP/1.1",
			wantAbsent: []string{"Connection", "Keep-Alive", "Proxy-Connection", "Upgrade"},
		},
		{
			// kong/runloop/handler.lua (access): Kong's own Connection and
			// Upgrade for a WebSocket request, the client's dropped.
			name: "websocket upgrade gets Kong's headers",
			request: "GET /a HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n" +
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
			wantLine: "GET /a HTTP/1.1",
			wantInOrder: []string{"Sec-Websocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-Websocket-Version: 13",
				"Connection: keep-alive, Upgrade", "Upgrade: websocket"},
		},
		{
			name:        "bare trailing ? kept, as Kong does",
			request:     "GET /q? HTTP/1.1\r\nHost: h\r\n\r\n",
			wantLine:    "GET /q? HTTP/1.1",
			wantInOrder: []string{"X-Forwarded-Path: /q"},
		},
		{
			name:        "HTTP/1.0 client, HTTP/1.1 upstream",
			request:     "GET /old HTTP/1.0\r\nHost: h\r\n\r\n",
			wantLine:    "GET /old HTTP/1.1",
			wantInOrder: []string{"Host: " + up.addr()},
		},
		{
			name:        "body with its length",
			request:     "POST /p HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
			wantLine:    "POST /p HTTP/1.1",
			wantInOrder: []string{"Content-Type: text/plain", "Content-Length: 5"},
			wantBody:    "hello",
		},
		{
			name:        "chunked body sent with its length",
			request:     "PUT /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
			wantLine:    "PUT /p HTTP/1.1",
			wantInOrder: []string{"Content-Length: 5"},
			wantAbsent:  []string{"Transfer-Encoding"},
			wantBody:    "abcde",
		},
		{
			name:        "POST without body says so",
			request:     "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
			wantLine:    "POST /p HTTP/1.1",
			wantInOrder: []string{"Content-Length: 0"},
		},
		{
			name:        "repeated X-Forwarded-For joined",
			request:     "GET /a HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n\r\n",
			wantLine:    "GET /a HTTP/1.1",
			wantInOrder: []string{"X-Forwarded-For: 10.0.0.1, 10.0.0.2, 127.0.0.1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp := rawExchange(t, s, tt.request); resp.StatusCode != 200 {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
			head, body := up.last(t)
			if line, _, _ := strings.Cut(head, "\r\n"); line != tt.wantLine {
				t.Errorf("got request line %q, want %q", line, tt.wantLine)
			}
			lines := headerLines(head)
			at := 0
			for _, want := range tt.wantInOrder {
				i := indexFrom(lines, at, want)
				if i < 0 {
					t.Fatalf("got headers %q, want %q in order from %d", lines, want, at)
				}
				at = i + 1
			}
			for _, name := range tt.wantAbsent {
				for _, l := range lines {
					if strings.HasPrefix(l, name+":") {
						t.Errorf("got %q, want no %s", l, name)
					}
				}
			}
			if string(body) != tt.wantBody {
				t.Errorf("got body %q, want %q", body, tt.wantBody)
			}
		})
	}
}

func indexFrom(lines []string, from int, want string) int {
	for i := from; i < len(lines); i++ {
		if lines[i] == want {
			return i
		}
	}
	return -1
}

// A body larger than one write goes out whole, whatever the method.
func TestUpstreamLargeBody(t *testing.T) {
	up := newRawUpstream(t, answerOK)
	s := startProxy(t, mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())},
		[]entity.Route{testRoute(idA, "s1", paths("/"))}))
	body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	resp, err := http.Post("http://"+s.Addr().String()+"/big", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("got status %d, want 200", resp.StatusCode)
	}
	if _, got := up.last(t); !bytes.Equal(got, body) {
		t.Fatalf("upstream got %d bytes, want the %d sent", len(got), len(body))
	}
}

// How each kind of upstream answer leaves the connection: reused, or
// closed and replaced by a new one for the next request.
func TestUpstreamConnectionReuse(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		answer      func(string) (string, bool)
		wantBody    string
		wantAccepts int64 // after three requests
	}{
		{"keep-alive", "GET", answerOK, "ok", 1},
		{"HEAD answer has no body", "HEAD", func(string) (string, bool) {
			return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false
		}, "", 1},
		{"Connection: close", "GET", func(string) (string, bool) {
			return "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", true
		}, "ok", 3},
		{"body until close", "GET", func(string) (string, bool) {
			return "HTTP/1.0 200 OK\r\n\r\nuntil close", true
		}, "until close", 3},
		{"upstream drops idle connections", "GET", func(string) (string, bool) {
			return okResponse, true // keep-alive promised, then closed: the next use fails and is retried
		}, "ok", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newRawUpstream(t, tt.answer)
			s := startProxy(t, mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())},
				[]entity.Route{testRoute(idA, "s1", paths("/"))}))
			for i := 0; i < 3; i++ {
				status, _, body := send(t, s, tt.method, "/", nil)
				if status != 200 || body != tt.wantBody {
					t.Fatalf("request %d: got %d %q, want 200 %q", i, status, body, tt.wantBody)
				}
				if tt.name == "upstream drops idle connections" {
					// Let the close reach the proxy's idle connection first.
					waitFor(t, func() bool { return up.accepts.Load() == int64(i+1) })
					time.Sleep(20 * time.Millisecond)
				}
			}
			if got := up.accepts.Load(); got != tt.wantAccepts {
				t.Errorf("got %d upstream connections, want %d", got, tt.wantAccepts)
			}
		})
	}
}

func TestProxyHTTPSUpstream(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure "+r.Host)
	}))
	t.Cleanup(up.Close)
	https := func(verify bool) func(*entity.Service) {
		return func(s *entity.Service) { s.Protocol, s.TLSVerify, s.Retries = "https", &verify, 0 }
	}
	s := startProxy(t, mustSnapshot(t, []entity.Service{
		testService(t, "skip", up.Listener.Addr().String(), https(false)),
		testService(t, "verify", up.Listener.Addr().String(), https(true)),
	}, []entity.Route{
		testRoute(idA, "skip", paths("/skip")),
		testRoute(idB, "verify", paths("/verify")),
	}))
	tests := []struct {
		target, wantBody string
		wantStatus       int
	}{
		{"/skip", "secure " + up.Listener.Addr().String(), 200},
		{"/verify", "", 502}, // httptest's certificate is not trusted
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			status, _, body := send(t, s, "GET", tt.target, nil)
			if status != tt.wantStatus || (tt.wantBody != "" && body != tt.wantBody) {
				t.Errorf("got %d %q, want %d %q", status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

// fakeConn is an upstream connection that only records being closed.
type fakeConn struct {
	memConn
	closed atomic.Bool
}

func (c *fakeConn) Read([]byte) (int, error)    { return 0, io.EOF }
func (c *fakeConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *fakeConn) Close() error                { c.closed.Store(true); return nil }

func TestUpstreamIdleConnections(t *testing.T) {
	var dialed []*fakeConn
	c := &upstreamClient{dial: func() (net.Conn, error) {
		fc := &fakeConn{}
		dialed = append(dialed, fc)
		return fc, nil
	}}
	t0 := time.Now()
	take := func(at time.Time) *upstreamConn {
		cc, err := c.acquire(at)
		if err != nil {
			t.Fatalf("acquire: %v", err)
		}
		return cc
	}
	a, b := take(t0), take(t0)
	c.release(a, t0)
	c.release(b, t0.Add(time.Second))
	if got := take(t0.Add(2 * time.Second)); got != b {
		t.Fatalf("got an older connection, want the most recently used")
	}
	// a has idled for maxIdleTime: the next acquire closes it and dials.
	fresh := take(t0.Add(maxIdleTime))
	if fresh == a || !dialed[0].closed.Load() || len(dialed) != 3 {
		t.Fatalf("got a reused or not closed, want it closed and a new dial")
	}
	// Releasing closes the connections that idled too long.
	c.release(fresh, t0.Add(maxIdleTime))
	c.release(b, t0.Add(3*maxIdleTime))
	if !dialed[2].closed.Load() || dialed[1].closed.Load() {
		t.Fatalf("want the stale connection closed at release and the released one kept")
	}
	c.closeIdle()
	if !dialed[1].closed.Load() {
		t.Fatalf("closeIdle left a connection open")
	}
}

// A client's Connection: close ends its connection after the answer; the
// upstream connection stays open for the next request.
func TestClientConnectionClose(t *testing.T) {
	up := newRawUpstream(t, answerOK)
	s := startProxy(t, mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())},
		[]entity.Route{testRoute(idA, "s1", paths("/"))}))
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	all, err := io.ReadAll(c) // ends only when the proxy closes
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(all)), nil)
	if err != nil {
		t.Fatalf("parse response: %v", err)
	}
	if resp.StatusCode != 200 || !resp.Close {
		t.Errorf("got %d, close %v; want 200 with Connection: close", resp.StatusCode, resp.Close)
	}
	head, _ := up.last(t)
	if strings.Contains(head, "Connection:") {
		t.Errorf("upstream got %q, want no Connection header", head)
	}
	if status, _, _ := send(t, s, "GET", "/", nil); status != 200 || up.accepts.Load() != 1 {
		t.Errorf("got %d over %d upstream connections, want 200 over 1", status, up.accepts.Load())
	}
}

// One sweep checks the idle connections next in line along with the one
// taken: those with nothing waiting go out without a check of their own
// until sweepFresh has passed or they are taken, one the upstream wrote to
// does not, and is found out when taken. (ngx_http_upstream_keepalive_module.c
// closes an idle connection on any read event, as the probe does.)
func TestSweepVouchesForCleanIdleConnections(t *testing.T) {
	c := &upstreamClient{}
	longAgo := time.Now().Add(-time.Second) // old enough to need a check, not to be closed
	clean, _ := idleUpstreamConn(t, false)
	dirty, dirtyPeer := idleUpstreamConn(t, false)
	top, _ := idleUpstreamConn(t, false)
	taken, _ := idleUpstreamConn(t, false)
	fd, ok := taken.pollable()
	if !ok {
		t.Skip("no sweeps on this platform")
	}
	for _, cc := range []*upstreamConn{clean, dirty, top} {
		c.release(cc, longAgo)
	}
	if _, err := dirtyPeer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	dirtyFD, _ := dirty.pollable()
	testutil.Eventually(t, 2*time.Second, func() error {
		if fds := []pollFd{{fd: dirtyFD, events: pollIn}}; !pollNow(fds) || fds[0].revents == 0 {
			return fmt.Errorf("the byte the upstream wrote has not arrived")
		}
		return nil
	})

	before := time.Now()
	if ok, polled := c.sweep(taken, fd); !polled || !ok {
		t.Fatalf("sweep of a clean connection: got clean %v, polled %v; want both", ok, polled)
	}
	for _, tt := range []struct {
		name        string
		want        *upstreamConn
		wantVouched bool
	}{
		{"clean, most recent", top, true},
		{"bytes waiting", dirty, false},
		{"clean, older", clean, true},
	} {
		got, vouched := c.popIdle(before)
		if got != tt.want || vouched != tt.wantVouched {
			t.Errorf("%s: got vouched %v (the right connection: %v), want %v", tt.name, vouched, got == tt.want, tt.wantVouched)
		}
		if got == dirty && c.checkIdle(got, before) {
			t.Errorf("%s: passed its own check, want it found out", tt.name)
		}
	}

	// Taken and back, a connection needs a new finding; and one expires.
	c.release(top, longAgo)
	if _, vouched := c.popIdle(before); vouched {
		t.Errorf("a connection taken since the sweep was vouched for, want it checked")
	}
	c.release(clean, longAgo)
	c.sweep(taken, fd)
	if _, vouched := c.popIdle(time.Now().Add(sweepFresh)); vouched {
		t.Errorf("a finding sweepFresh old was used, want a new check")
	}
}

// A connection idle for less than probeAfter goes back out without the
// probe's read (under load that read was a tenth of the proxy's CPU); one
// idle longer is probed, so bytes the upstream sent unasked make it
// unusable. (On loopback a write is queued at the receiver when it
// returns.)
func TestProbeIdleOnlyAfterProbeAfter(t *testing.T) {
	cc, peer := idleUpstreamConn(t, false)
	released := time.Now()
	cc.idleSince = released
	if !cc.probeIdle(released.Add(probeAfter)) {
		t.Fatal("an idle connection with nothing to read failed its probe")
	}
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if !cc.probeIdle(released.Add(probeAfter / 2)) {
		t.Fatal("a connection idle for less than probeAfter was probed")
	}
	testutil.Eventually(t, 2*time.Second, func() error {
		if cc.probeIdle(released.Add(probeAfter)) {
			return fmt.Errorf("a connection idle for probeAfter with a byte waiting passed its probe")
		}
		return nil
	})
}
