package proxy

import (
	"net"
	"testing"

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
