package proxy

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/grapevine-gw/grapevine/entity"
)

// BenchmarkProxy runs the request path (route, rewrite, upstream round trip
// over loopback, downstream headers) without the client-side socket, for
// profiling: go test -bench Proxy -cpuprofile cpu.out -memprofile mem.out.
func BenchmarkProxy(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatalf("listen: %v", err)
	}
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }}
	go up.Serve(ln) //nolint:errcheck // ends when the listener closes
	b.Cleanup(func() { up.Shutdown() })

	s := New(DefaultConfig())
	s.Swap(mustSnapshot(b, []entity.Service{testService(b, "s1", ln.Addr().String())},
		[]entity.Route{testRoute(idA, "s1", paths("/"))}))
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		var req fasthttp.Request
		ctx.Init(&req, remote, nil)
		for pb.Next() {
			ctx.Request.Reset()
			ctx.Request.Header.SetMethod("GET")
			ctx.Request.SetRequestURI("/users/42?x=1")
			ctx.Request.Header.SetHost("example.com")
			ctx.Request.Header.Set("User-Agent", "wrk")
			s.handle(&ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Fatalf("got status %d, want 200", ctx.Response.StatusCode())
			}
		}
	})
}

// BenchmarkProxyInMemory is the user-space cost of one proxied request:
// the real fasthttp server loop and the proxy's upstream client, with both
// sockets replaced by in-memory connections that answer at once, so system
// calls and scheduling drop out of the figure. It is the benchmark to
// profile when changing the request path:
// go test -run - -bench ProxyInMemory -cpuprofile cpu.out ./proxy
func BenchmarkProxyInMemory(b *testing.B) {
	s := inMemoryServer(b)
	srv := s.newFastHTTPServer()
	client := &memClientConn{request: []byte(benchClientRequest), left: b.N}

	b.ReportAllocs()
	b.ResetTimer()
	if err := srv.ServeConn(client); err != nil {
		b.Fatalf("serve: %v", err)
	}
	b.StopTimer()
	if client.responses != b.N || !bytes.HasPrefix(client.first, []byte("HTTP/1.1 200 OK\r\n")) {
		b.Fatalf("got %d responses, the first %q; want %d of 200", client.responses, client.first, b.N)
	}
}

// The request wrk sends and the response nginx's `return 200 'ok\n'` gives.
const (
	benchClientRequest    = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
	benchUpstreamResponse = "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 25 Nov 2026 17:45:46 GMT\r\n" +
		"Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"
)

// memClientConn is a client connection that sends request left times, one
// per Read, and counts the responses written back.
type memClientConn struct {
	memConn
	request   []byte
	left      int
	responses int
	first     []byte // the first response, for checking
}

func (c *memClientConn) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	c.left--
	return copy(p, c.request), nil
}

func (c *memClientConn) Write(p []byte) (int, error) {
	if c.first == nil {
		c.first = append([]byte(nil), p...)
	}
	c.responses += bytes.Count(p, []byte("HTTP/1.1 "))
	return len(p), nil
}

// memUpstreamConn is an upstream connection that answers every request
// written to it with response.
type memUpstreamConn struct {
	memConn
	response []byte
	pending  int
}

func (c *memUpstreamConn) Write(p []byte) (int, error) {
	c.pending++
	return len(p), nil
}

func (c *memUpstreamConn) Read(p []byte) (int, error) {
	if c.pending == 0 {
		return 0, io.EOF
	}
	c.pending--
	return copy(p, c.response), nil
}

// memConn is the rest of net.Conn for the in-memory connections.
type memConn struct{}

var memRemoteAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

// memLocalAddr is the in-memory connections' local address, made once as a
// socket's is (net.TCPConn.LocalAddr returns the address it keeps).
var memLocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000}

func (memConn) Close() error                     { return nil }
func (memConn) LocalAddr() net.Addr              { return memLocalAddr }
func (memConn) RemoteAddr() net.Addr             { return memRemoteAddr }
func (memConn) SetDeadline(time.Time) error      { return nil }
func (memConn) SetReadDeadline(time.Time) error  { return nil }
func (memConn) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkProbeIdle is the cost the idle check adds to each reuse of an
// upstream connection (one read system call that finds nothing), over
// plain TCP and through TLS.
func BenchmarkProbeIdle(b *testing.B) {
	for _, name := range []string{"tcp", "tls"} {
		b.Run(name, func(b *testing.B) {
			cc, _ := idleUpstreamConn(b, name == "tls")
			b.ReportAllocs()
			now := time.Now() // long after the connection's zero idleSince: every call probes
			for b.Loop() {
				if !cc.probeIdle(now) {
					b.Fatal("got a dead connection, want an idle one")
				}
			}
		})
	}
}

// idleUpstreamConn is an open upstream connection on loopback with nothing
// to read, over TLS when useTLS is set, and the upstream's end of it.
func idleUpstreamConn(b testing.TB, useTLS bool) (*upstreamConn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	peer, err := ln.Accept()
	if err != nil {
		b.Fatalf("accept: %v", err)
	}
	b.Cleanup(func() { c.Close(); peer.Close() })
	conn := wrapUpstreamConn(c, time.Millisecond)
	if useTLS {
		hs := httptest.NewUnstartedServer(nil)
		hs.StartTLS()
		cfg := hs.TLS.Clone()
		hs.Close()
		server := tls.Server(peer, cfg)
		go server.Handshake()                                         //nolint:errcheck // the client's handshake fails too
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test certificate
		if err := tc.Handshake(); err != nil {
			b.Fatalf("handshake: %v", err)
		}
		conn = tc
	}
	return &upstreamConn{Conn: conn, sock: socketOf(conn)}, peer
}

// inMemoryServer is a proxy with one route "/" whose upstream connections
// answer at once in memory, for the in-memory benchmarks.
func inMemoryServer(b *testing.B) *Server {
	s := New(DefaultConfig())
	s.pool.dial = func(clientKey) dialFunc {
		return func() (net.Conn, error) {
			return &memUpstreamConn{response: []byte(benchUpstreamResponse)}, nil
		}
	}
	s.Swap(mustSnapshot(b, []entity.Service{testService(b, "s1", "127.0.0.1:9")},
		[]entity.Route{testRoute(idA, "s1", paths("/"), noStrip)}))
	return s
}
