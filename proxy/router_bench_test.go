package proxy

import (
	"fmt"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/grapevine-gw/grapevine/entity"
)

// benchRoutes is a configuration of n routes shaped like a large API
// catalogue: every route has its own path, a third also a host, a third
// also methods; the last one, "/late", has only a short path, so in
// priority order it comes after all the others.
func benchRoutes(n int) []entity.Route {
	routes := make([]entity.Route, 0, n)
	for i := 0; i < n-1; i++ {
		opts := []func(*entity.Route){paths(fmt.Sprintf("/api/route-%d/items", i))}
		switch i % 3 {
		case 1:
			opts = append(opts, hosts(fmt.Sprintf("host-%d.example.com", i)))
		case 2:
			opts = append(opts, methods("GET", "POST"))
		}
		routes = append(routes, testRoute(fmt.Sprintf("00000000-0000-4000-8000-%012d", i), "", opts...))
	}
	return append(routes, testRoute("ffffffff-0000-4000-8000-000000000000", "", paths("/late")))
}

// BenchmarkMatch is the router's cost for one request on n routes: one
// that matches the route last in priority order and one that matches no
// route. With a linear router both walk every matcher.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 10000, 100000} {
		snap := mustSnapshot(b, nil, benchRoutes(n))
		var h fasthttp.RequestHeader
		h.Set("User-Agent", "wrk")
		for _, c := range []struct {
			name, path string
			want       bool
		}{
			{"late", "/late/x", true},
			{"none", "/nothing/here", false},
		} {
			req := request{method: []byte("GET"), host: []byte("nomatch.example.com"), port: 8000,
				path: []byte(c.path), header: &h}
			b.Run(fmt.Sprintf("routes=%d/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if m, _ := snap.match(&req); (m != nil) != c.want {
						b.Fatalf("got match %v, want %v", m != nil, c.want)
					}
				}
			})
		}
	}
}
