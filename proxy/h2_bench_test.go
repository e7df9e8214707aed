package proxy

import (
	"io"
	"net"
	"net/http"
	"testing"

	"golang.org/x/net/http2"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy/h2bridge"
)

// BenchmarkProxyH2InMemory is BenchmarkProxyInMemory for HTTP/2: an h2c
// client (golang.org/x/net/http2) sends GET / on streams of one
// connection through an in-memory pipe to the proxy's HTTP/2 server
// (h2bridge), whose upstream connections answer at once in memory. The
// client's own cost is in the figure; profile to see the server's share:
// go test -run - -bench ProxyH2InMemory -cpuprofile cpu.out ./proxy
func BenchmarkProxyH2InMemory(b *testing.B) {
	s := New(DefaultConfig())
	s.pool.dial = func(clientKey) dialFunc {
		return func() (net.Conn, error) {
			return &memUpstreamConn{response: []byte(benchUpstreamResponse)}, nil
		}
	}
	s.Swap(mustSnapshot(b, []entity.Service{testService(b, "s1", "127.0.0.1:9")},
		[]entity.Route{testRoute(idA, "s1", paths("/"), noStrip)}))
	srv := h2bridge.New(s.handle, h2bridge.Options{ServerName: "grapevine/bench", MaxHeaderBytes: s.headerBufferSize()})
	clientSide, serverSide := net.Pipe()
	go srv.ServeConn(serverSide) //nolint:errcheck // ends when the pipe closes
	b.Cleanup(func() { clientSide.Close() })
	cc, err := (&http2.Transport{AllowHTTP: true}).NewClientConn(clientSide)
	if err != nil {
		b.Fatalf("client conn: %v", err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(8) // streams in flight on the one connection, as h2load -m
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", "http://127.0.0.1:8000/", nil)
			resp, err := cc.RoundTrip(req)
			if err != nil {
				b.Errorf("round trip: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("got %d, want 200", resp.StatusCode)
				return
			}
		}
	})
}
