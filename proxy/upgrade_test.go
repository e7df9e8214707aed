package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// The WebSocket tests put a real WebSocket client and server (gorilla's)
// on either side of a real proxy. What they check is Kong 3.9's:
//   - kong/runloop/handler.lua, access phase ("Keep-Alive and WebSocket
//     Protocol Upgrade Headers"): a request with "Upgrade: websocket" (any
//     case) goes upstream with "Connection: keep-alive, Upgrade" and
//     "Upgrade: websocket"; any other request gets no Upgrade (nginx_kong.lua
//     sets both headers from these variables with proxy_set_header);
//   - handler.lua's header_filter drops the upstream's Upgrade only when it
//     differs from the one sent;
//   - handler.lua's balancer data gives nginx send_timeout = write_timeout
//     and read_timeout = read_timeout, which nginx's upgraded mode
//     (ngx_http_upstream_process_upgraded) applies to the tunnel: its read
//     timer is re-armed whenever bytes move either way.

// wsUpstream is a WebSocket upstream. By path:
//
//	/echo    echoes every message with its type
//	/sink    reads messages and answers only "ping-back", with "pong"
//	/bye     sends "bye" and closes
//	/refuse  answers 403 "no websocket here" without upgrading
//
// Each connection's end is reported on closed.
type wsUpstream struct {
	*upstream
	closed chan error
}

func newWSUpstream(t *testing.T) *wsUpstream {
	t.Helper()
	w := &wsUpstream{closed: make(chan error, 16)}
	upgrader := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
	w.upstream = newUpstream(t, func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			rw.WriteHeader(http.StatusForbidden)
			io.WriteString(rw, "no websocket here")
			return
		}
		if r.URL.Path == "/plain" {
			io.WriteString(rw, "plain")
			return
		}
		conn, err := upgrader.Upgrade(rw, r, nil)
		if err != nil {
			return // gorilla answered the client itself
		}
		defer conn.Close()
		w.closed <- w.serve(conn, r.URL.Path)
	})
	return w
}

func (w *wsUpstream) serve(conn *websocket.Conn, path string) error {
	conn.SetReadLimit(8 << 20)
	if path == "/bye" {
		if err := conn.WriteMessage(websocket.TextMessage, []byte("bye")); err != nil {
			return err
		}
		return conn.Close()
	}
	for {
		typ, msg, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		switch {
		case path == "/echo":
			err = conn.WriteMessage(typ, msg)
		case string(msg) == "ping-back":
			err = conn.WriteMessage(websocket.TextMessage, []byte("pong"))
		}
		if err != nil {
			return err
		}
	}
}

// wsProxy starts a proxy routing everything to a WebSocket upstream, its
// service changed by opts, and configured by configure.
func wsProxy(t *testing.T, configure func(*Config), opts ...func(*entity.Service)) (*Server, *wsUpstream) {
	t.Helper()
	up := newWSUpstream(t)
	if configure == nil {
		configure = func(*Config) {}
	}
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr(), opts...)},
		[]entity.Route{testRoute(idA, "s1", paths("/"), noStrip)})
	return startProxyWith(t, snap, configure), up
}

// dialWS opens a WebSocket through the proxy; the test closes it.
func dialWS(t *testing.T, s *Server, path string) (*websocket.Conn, *http.Response) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial("ws://"+s.Addr().String()+path, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", path, err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, resp
}

func waitActive(t *testing.T, s *Server, want int64) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := s.Stats().ConnectionsActive; n != want {
			return fmt.Errorf("got connections_active %d, want %d", n, want)
		}
		return nil
	})
}

// expectClosed waits for the next read of conn to fail, as it must once
// the proxy closed the tunnel.
func expectClosed(t *testing.T, conn *websocket.Conn) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := conn.ReadMessage()
		if err == nil {
			continue // what was in flight
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("tunnel still open after 10s (last message %q), want it closed", msg)
		}
		return
	}
}

func TestWebSocketEcho(t *testing.T) {
	s, up := wsProxy(t, nil)
	conn, resp := dialWS(t, s, "/echo")

	t.Run("handshake", func(t *testing.T) {
		sent := up.last(t).Header
		if got := sent.Get("Upgrade"); got != "websocket" {
			t.Errorf("upstream got Upgrade %q, want websocket", got)
		}
		if got := sent.Get("Connection"); got != "keep-alive, Upgrade" {
			t.Errorf("upstream got Connection %q, want Kong's \"keep-alive, Upgrade\"", got)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Errorf("got status %d, want 101", resp.StatusCode)
		}
		for name, want := range map[string]string{
			"Upgrade":    "websocket",
			"Connection": "upgrade",
			"Via":        "1.1 grapevine/9.9.9",
		} {
			if got := resp.Header.Get(name); got != want {
				t.Errorf("got %s %q, want %q", name, got, want)
			}
		}
		if resp.Header.Get("X-Kong-Request-Id") == "" || resp.Header.Get("X-Kong-Upstream-Latency") == "" {
			t.Errorf("got headers %v, want Kong's X-Kong-Request-Id and latency headers", resp.Header)
		}
	})

	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	for _, tc := range []struct {
		name string
		typ  int
		msg  []byte
	}{
		{"text", websocket.TextMessage, []byte("hello, tunnel")},
		{"binary", websocket.BinaryMessage, []byte{0, 1, 2, 0xff, '\r', '\n'}},
		{"1 MiB binary", websocket.BinaryMessage, big},
		{"text after the large one", websocket.TextMessage, []byte("still here")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn.SetReadLimit(8 << 20)
			conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := conn.WriteMessage(tc.typ, tc.msg); err != nil {
				t.Fatalf("write: %v", err)
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			typ, got, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if typ != tc.typ || !bytes.Equal(got, tc.msg) {
				t.Fatalf("got type %d, %d bytes; want type %d, %d bytes, the same", typ, len(got), tc.typ, len(tc.msg))
			}
		})
	}
}

// Either side closing ends the tunnel, the other side sees its connection
// end, and the client connection stops being counted.
func TestWebSocketClose(t *testing.T) {
	t.Run("upstream closes", func(t *testing.T) {
		s, up := wsProxy(t, nil)
		conn, _ := dialWS(t, s, "/bye")
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, msg, err := conn.ReadMessage(); err != nil || string(msg) != "bye" {
			t.Fatalf("got %q, %v; want the upstream's \"bye\"", msg, err)
		}
		expectClosed(t, conn)
		<-up.closed
		waitActive(t, s, 0)
	})
	t.Run("client closes", func(t *testing.T) {
		s, up := wsProxy(t, nil)
		conn, _ := dialWS(t, s, "/echo")
		waitActive(t, s, 1)
		conn.Close()
		select {
		case err := <-up.closed:
			if err == nil {
				t.Fatalf("upstream read ended without error, want the connection closed")
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("upstream connection still open 10s after the client closed")
		}
		waitActive(t, s, 0)
	})
}

// A tunnel is closed once no bytes crossed it either way for the service's
// read_timeout; bytes in either direction keep it open (nginx re-arms the
// upstream's read timer on every event of the tunnel).
func TestWebSocketIdleTimeout(t *testing.T) {
	const readTimeout = 400 * time.Millisecond
	s, up := wsProxy(t, nil, func(svc *entity.Service) { svc.ReadTimeout = int(readTimeout.Milliseconds()) })

	t.Run("client traffic keeps it open", func(t *testing.T) {
		conn, _ := dialWS(t, s, "/sink")
		// Only the client sends, for three read_timeouts.
		for end := time.Now().Add(3 * readTimeout); time.Now().Before(end); time.Sleep(readTimeout / 8) {
			if err := conn.WriteMessage(websocket.TextMessage, []byte("tick")); err != nil {
				t.Fatalf("write: %v", err)
			}
		}
		conn.WriteMessage(websocket.TextMessage, []byte("ping-back"))
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, msg, err := conn.ReadMessage(); err != nil || string(msg) != "pong" {
			t.Fatalf("got %q, %v; want \"pong\" through a tunnel kept busy", msg, err)
		}
	})
	t.Run("idle tunnel closed", func(t *testing.T) {
		conn, _ := dialWS(t, s, "/sink")
		opened := time.Now()
		expectClosed(t, conn)
		if idle := time.Since(opened); idle < readTimeout {
			t.Errorf("closed after %s, want no sooner than read_timeout %s", idle, readTimeout)
		}
		select {
		case <-up.closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("upstream connection still open 10s after the tunnel went idle")
		}
		waitActive(t, s, 0)
	})
}

// connections_active counts a tunnel while it is open, and at the
// connection cap the tunnel is not closed as an idle connection.
func TestWebSocketCounted(t *testing.T) {
	s, _ := wsProxy(t, func(c *Config) { c.MaxConnections = 1 })
	conn, _ := dialWS(t, s, "/echo")
	waitActive(t, s, 1)

	// The cap is reached: a new connection finds nothing idle to close.
	extra := rawConn(t, s)
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); err == nil {
		t.Fatalf("new connection at the cap got %d bytes, want it closed", n)
	}
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte("alive?")); err != nil {
		t.Fatalf("write after the cap was hit: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, msg, err := conn.ReadMessage(); err != nil || string(msg) != "alive?" {
		t.Fatalf("got %q, %v; want the echo: the tunnel must not be taken for an idle connection", msg, err)
	}
	if n := s.Stats().ConnectionsActive; n != 1 {
		t.Errorf("got connections_active %d with the tunnel open, want 1", n)
	}
	conn.Close()
	waitActive(t, s, 0)
}

// An upgrade the upstream refuses is answered as any other response, with
// Kong's headers, and its connection is not kept for other requests.
func TestWebSocketRefused(t *testing.T) {
	s, up := wsProxy(t, nil)
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial("ws://"+s.Addr().String()+"/refuse", nil)
	if err == nil {
		conn.Close()
		t.Fatalf("dial succeeded, want the upstream's 403")
	}
	if resp == nil {
		t.Fatalf("dial: %v, want the upstream's 403 response", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden || string(body) != "no websocket here" {
		t.Errorf("got %d %q, want 403 \"no websocket here\"", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Via"); got != "1.1 grapevine/9.9.9" {
		t.Errorf("got Via %q, want Kong's", got)
	}
	if got := resp.Header.Get("Connection"); strings.EqualFold(got, "upgrade") {
		t.Errorf("got Connection %q on a refused upgrade", got)
	}
	// The refused upgrade's upstream connection was its own and is gone:
	// an ordinary request opens another.
	if status, _, got := send(t, s, "GET", "/plain", nil); status != 200 || got != "plain" {
		t.Fatalf("ordinary request after the refusal: got %d %q, want 200 \"plain\"", status, got)
	}
	if n := up.conns.Load(); n != 2 {
		t.Errorf("upstream accepted %d connections, want 2 (the upgrade's is never pooled)", n)
	}
}

// Only a WebSocket upgrade is passed; any other Upgrade is dropped and
// the request proxied as usual (Kong sets Upgrade upstream only for
// websocket).
func TestUpgradeOtherThanWebSocketDropped(t *testing.T) {
	s, up := wsProxy(t, nil)
	for _, tc := range []struct{ name, upgrade, connection string }{
		{"h2c", "h2c", "Upgrade, HTTP2-Settings"},
		{"tls", "TLS/1.2", "Upgrade"},
		{"websocket in a list", "websocket, h2c", "Upgrade"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"Upgrade": tc.upgrade, "Connection": tc.connection}
			if strings.Contains(tc.connection, "HTTP2-Settings") {
				hdr["HTTP2-Settings"] = "AAMAAABkAAQAoAAAAAIAAAAA" // named in Connection, so dropped
			}
			status, _, body := send(t, s, "GET", "/plain", hdr)
			if status != 200 || body != "plain" {
				t.Fatalf("got %d %q, want 200 \"plain\"", status, body)
			}
			h := up.last(t).Header
			for _, name := range []string{"Upgrade", "Connection", "Http2-Settings"} {
				if got := h.Get(name); got != "" {
					t.Errorf("upstream got %s %q, want none", name, got)
				}
			}
		})
	}
}

// Bytes that arrive with the handshake on either side (the upstream's
// first frame in the same packet as its 101, the client's first frame
// right after its request) are not lost in the readers' buffers.
func TestUpgradeEarlyBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	served := make(chan error, 1)
	go func() { served <- rawUpgradeServer(ln) }()

	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", ln.Addr().String())},
		[]entity.Route{testRoute(idA, "s1", paths("/"), noStrip)})
	s := startProxy(t, snap)
	c := rawConn(t, s)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /raw HTTP/1.1\r\nHost: a.test\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\nclient-first")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read 101: %v", err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("got %d, want 101", resp.StatusCode)
	}
	want := "upstream-first|echo:client-first"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	c.Close()
	if err := <-served; err != nil {
		t.Fatalf("upstream: %v", err)
	}
}

// rawUpgradeServer accepts one connection, reads a request's head,
// answers 101 with its first bytes in the same write, then echoes what
// follows once, prefixed with "echo:".
func rawUpgradeServer(ln net.Listener) error {
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return err
	}
	if req.Header.Get("Upgrade") != "websocket" {
		return fmt.Errorf("got Upgrade %q, want websocket", req.Header.Get("Upgrade"))
	}
	io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nupstream-first|")
	buf := make([]byte, len("client-first"))
	if _, err := io.ReadFull(br, buf); err != nil {
		return fmt.Errorf("read the client's early bytes: %w", err)
	}
	_, err = io.WriteString(c, "echo:"+string(buf))
	return err
}

// A service over TLS (wss upstream) tunnels the same way: reads and writes
// of the TLS connection run at once once the 101 has arrived.
func TestWebSocketTLSUpstream(t *testing.T) {
	up := &wsUpstream{closed: make(chan error, 16)}
	upgrader := websocket.Upgrader{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(rw, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		up.closed <- up.serve(conn, "/echo")
	}))
	t.Cleanup(srv.Close)
	https := func(svc *entity.Service) { svc.Protocol = "https" }
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", srv.Listener.Addr().String(), https)},
		[]entity.Route{testRoute(idA, "s1", paths("/"), noStrip)})
	s := startProxy(t, snap)
	conn, _ := dialWS(t, s, "/echo")
	conn.SetReadLimit(8 << 20)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	echoesBack(t, s, conn, []byte("small"), big, []byte("small again"))
}

// A WebSocket opened over the proxy's ssl listener (wss, Kong's "https"
// route protocol) tunnels as on a plain one, through TLS both ways: the
// tunnel runs on the hijacked TLS connection.
func TestWebSocketOverTLSListener(t *testing.T) {
	s, _ := wsProxy(t, func(c *Config) { c.Listen = tlsListens })
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second,
		TLSClientConfig: &tls.Config{ServerName: "a.test", InsecureSkipVerify: true}} //nolint:gosec // test certificates
	conn, resp, err := d.Dial("wss://"+tlsAddr(t, s)+"/echo", nil)
	if err != nil {
		t.Fatalf("dial: %v (response %v)", err, resp)
	}
	defer conn.Close()
	conn.SetReadLimit(8 << 20)
	echoesBack(t, s, conn, []byte("over tls"), bytes.Repeat([]byte("x"), 1<<20))
}

// echoesBack sends each message on conn, expects it back from the echo
// upstream, then closes conn and waits until the proxy counts no
// connection open.
func echoesBack(t *testing.T, s *Server, conn *websocket.Conn, msgs ...[]byte) {
	t.Helper()
	for _, msg := range msgs {
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := conn.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatalf("write: %v", err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, got, err := conn.ReadMessage(); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("got %d bytes, %v; want the %d bytes sent back", len(got), err, len(msg))
		}
	}
	conn.Close()
	waitActive(t, s, 0)
}

// Shutdown closes open tunnels and returns: a WebSocket can stay open
// for hours.
func TestWebSocketShutdown(t *testing.T) {
	s, _ := wsProxy(t, nil)
	conn, _ := dialWS(t, s, "/echo")
	waitActive(t, s, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	expectClosed(t, conn)
	if n := s.tunnels.openTunnels(); n != 0 {
		t.Errorf("got %d tunnels open after shutdown, want 0", n)
	}
}

// An upgrade whose upstream cannot be reached is answered as any failed
// request is: 502 with Kong's message (kong/error_handlers.lua).
func TestWebSocketUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", addr, func(svc *entity.Service) { svc.Retries = 1 })},
		[]entity.Route{testRoute(idA, "s1", paths("/"), noStrip)})
	s := startProxy(t, snap)
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial("ws://"+s.Addr().String()+"/echo", nil)
	if err == nil {
		conn.Close()
		t.Fatalf("dial succeeded, want 502")
	}
	if resp == nil {
		t.Fatalf("dial: %v, want a 502 response", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), msgBadResponse) {
		t.Errorf("got %d %q, want 502 with %q", resp.StatusCode, body, msgBadResponse)
	}
}
