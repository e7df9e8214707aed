package proxy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/grapevine-gw/grapevine/entity"
)

// linearMatch is the router before the index: every matcher of every
// route in priority order, the first that matches wins. It is the
// reference the index must agree with.
func linearMatch(t testing.TB, in SnapshotInput, req *request) (*matcher, int) {
	t.Helper()
	disabled := map[string]bool{}
	for _, s := range in.Services {
		disabled[s.ID] = !s.Enabled
	}
	var all []*matcher
	for i := range in.Routes {
		r := &in.Routes[i]
		if r.Service != nil && disabled[r.Service.ID] || !isHTTPRoute(r) {
			continue
		}
		ms, err := compileRoute(r, &route{id: r.ID})
		if err != nil {
			continue
		}
		all = append(all, ms...)
	}
	slices.SortStableFunc(all, compareMatchers)
	for _, m := range all {
		if n, ok := m.matches(req); ok {
			return m, n
		}
	}
	return nil, -1
}

// The pools random routes and requests draw from are small, so that
// routes overlap and most requests match several of them.
var (
	randHosts = []string{"a.com", "b.a.com", "x.b.a.com", "A.org", "*.a.com", "*.b.a.com", "a.*", "b.*",
		"a.com:8000", "a.com:9000", "*.a.com:8000", "*a.com", "*", "[::1]"}
	randPaths = []string{"/", "/a", "/a/", "/a/b", "/ab", "/abc", "/b", "/b/c/d", "/caf\u00e9",
		`~/a`, `~/a/\d+`, `~/(a|b)/x`, `~(?i)/A`, `~/[ab]+/?$`, `~^/b`, `~/a\.b`, `~(?m)^/c`}
	randMethods  = []string{"GET", "POST", "PUT"}
	randReqHosts = []string{"", "a.com", "b.a.com", "x.b.a.com", "y.x.b.a.com", "a.org", "a.com.b", "b.com", "c.a.com",
		"A.COM", "a.com:8000", "a.com:9000", "b.a.com:8000", "[::1]", "acom", ".a.com"}
	randReqPaths = []string{"/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/abc", "/abcd", "/b", "/b/c", "/b/c/d/e",
		"/a/12", "/b/x", "/A", "/ab/", "/caf%C3%A9", "/c", "/a.b", "/aXb", "/zzz", "/a/%2F"}
)

func pick[T any](r *rand.Rand, pool []T, max int) []T {
	n := r.IntN(max + 1)
	out := make([]T, 0, n)
	for range n {
		out = append(out, pool[r.IntN(len(pool))])
	}
	return out
}

func randRoute(r *rand.Rand, i int, serviceIDs []string) entity.Route {
	opts := []func(*entity.Route){}
	if p := pick(r, randPaths, 3); len(p) > 0 {
		opts = append(opts, paths(p...))
	}
	if h := pick(r, randHosts, 2); len(h) > 0 {
		opts = append(opts, hosts(h...))
	}
	if m := pick(r, randMethods, 2); len(m) > 0 {
		opts = append(opts, methods(m...))
	}
	if r.IntN(4) == 0 {
		opts = append(opts, headers("X-V", []string{"1", "2", `~*^v\d$`}[r.IntN(3)]))
	}
	if r.IntN(4) == 0 {
		opts = append(opts, regexPriority(r.IntN(5)-2))
	}
	if r.IntN(6) == 0 {
		opts = append(opts, snis("s.com"))
	}
	if r.IntN(10) == 0 {
		opts = append(opts, func(e *entity.Route) { e.Protocols = []string{"tcp"} })
	}
	svc := ""
	if len(serviceIDs) > 0 && r.IntN(5) > 0 {
		svc = serviceIDs[r.IntN(len(serviceIDs))]
	}
	// Ids in a small range, so ties between equal priorities are common.
	id := fmt.Sprintf("%08x-0000-4000-8000-%012d", r.IntN(1<<20), i)
	return testRoute(id, svc, opts...)
}

func randService(t testing.TB, r *rand.Rand, id string) entity.Service {
	return testService(t, id, fmt.Sprintf("10.0.0.%d:%d", r.IntN(4), 80+r.IntN(3)), func(s *entity.Service) {
		s.Enabled = r.IntN(5) > 0
	})
}

func randRequest(r *rand.Rand) (request, string) {
	var h fasthttp.RequestHeader
	if r.IntN(3) == 0 {
		h.Set("X-V", []string{"1", "2", "V3", "x"}[r.IntN(4)])
	}
	var st reqState
	rawHost := randReqHosts[r.IntN(len(randReqHosts))]
	host, port := lowerHost(&st, []byte(rawHost))
	if port == 0 {
		port = []int{8000, 9000}[r.IntN(2)]
	}
	rawPath := randReqPaths[r.IntN(len(randReqPaths))]
	req := request{
		method: []byte(randMethods[r.IntN(len(randMethods))]),
		host:   append([]byte(nil), host...),
		port:   port,
		path:   entity.AppendNormalizedPath(nil, []byte(rawPath)),
		header: &h,
	}
	return req, fmt.Sprintf("%s %s Host=%q port=%d X-V=%q", req.method, rawPath, rawHost, port, h.Peek("X-V"))
}

// checkAgainstLinear routes requests through snap and the linear router
// over the same configuration and fails on any difference.
func checkAgainstLinear(t *testing.T, r *rand.Rand, snap *Snapshot, in SnapshotInput, requests int) {
	t.Helper()
	for range requests {
		req, desc := randRequest(r)
		got, gotN := snap.match(&req)
		want, wantN := linearMatch(t, in, &req)
		if matcherID(got) != matcherID(want) || gotN != wantN {
			t.Fatalf("%s: got matcher %s (n=%d), want %s (n=%d)", desc, matcherID(got), gotN, matcherID(want), wantN)
		}
		if got != nil {
			checkBinding(t, snap, in, got.route)
		}
	}
}

func matcherID(m *matcher) string {
	if m == nil {
		return "none"
	}
	return m.id
}

// checkBinding checks that a matched route points to the current version
// of its service, in the snapshot's slot for it.
func checkBinding(t *testing.T, snap *Snapshot, in SnapshotInput, r *route) {
	t.Helper()
	var want *entity.Service
	for i := range in.Routes {
		if e := &in.Routes[i]; e.ID == r.id && e.Service != nil {
			for j := range in.Services {
				if in.Services[j].ID == e.Service.ID {
					want = &in.Services[j]
				}
			}
		}
	}
	switch {
	case want == nil && r.svc != nil:
		t.Fatalf("route %s: got service %s, want none", r.id, r.svc.id)
	case want == nil:
	case r.svc == nil || r.svc.id != want.ID || r.svc.addr != newService(0, want, nil).addr:
		t.Fatalf("route %s: got service %+v, want %s at %s", r.id, r.svc, want.ID, newService(0, want, nil).addr)
	case r.svc.idx >= len(snap.services) || snap.services[r.svc.idx] != r.svc:
		t.Fatalf("route %s: service %s not in its slot %d", r.id, r.svc.id, r.svc.idx)
	}
}

// TestIndexMatchesLinear is the differential test of the route index: on
// random route sets, a snapshot must pick exactly the matcher (and matched
// length) the plain linear router picks.
func TestIndexMatchesLinear(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for round := range 300 {
		services := []entity.Service{randService(t, r, "s1"), randService(t, r, "s2")}
		var routes []entity.Route
		for i := range 1 + r.IntN(40) {
			routes = append(routes, randRoute(r, i, []string{"s1", "s2", "s3"}))
		}
		in := SnapshotInput{Services: services, Routes: routes}
		snap, _ := NewSnapshot(in)
		t.Run(fmt.Sprint(round), func(t *testing.T) { checkAgainstLinear(t, r, snap, in, 60) })
	}
}

// TestBuilderIncremental applies random changes one batch at a time and
// checks each snapshot against the linear router over the whole
// configuration, and that snapshots already published never change.
func TestBuilderIncremental(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	serviceIDs := []string{"s1", "s2", "s3", "s4"}
	for round := range 20 {
		b := NewBuilder()
		services := map[string]entity.Service{}
		routes := map[string]entity.Route{}
		type published struct {
			snap *Snapshot
			in   SnapshotInput
		}
		var history []published
		for step := range 40 {
			touchedSvc, touchedRoutes := map[string]bool{}, map[string]bool{}
			for range 1 + r.IntN(3) {
				switch k := r.IntN(10); {
				case k < 2:
					id := serviceIDs[r.IntN(len(serviceIDs))]
					touchedSvc[id] = true
					if _, ok := services[id]; ok && r.IntN(2) == 0 {
						delete(services, id)
						continue
					}
					services[id] = randService(t, r, id)
				case k < 4 && len(routes) > 0:
					for id := range routes {
						delete(routes, id)
						touchedRoutes[id] = true
						break
					}
				default:
					e := randRoute(r, r.IntN(30), serviceIDs)
					routes[e.ID] = e
					touchedRoutes[e.ID] = true
				}
			}
			// A batch names each entity once, in its final state, as the
			// node's batches do.
			var c SnapshotChange
			for id := range touchedSvc {
				if s, ok := services[id]; ok {
					c.Put.Services = append(c.Put.Services, s)
				} else {
					c.Deleted.Services = append(c.Deleted.Services, id)
				}
			}
			for id := range touchedRoutes {
				if e, ok := routes[id]; ok {
					c.Put.Routes = append(c.Put.Routes, e)
				} else {
					c.Deleted.Routes = append(c.Deleted.Routes, id)
				}
			}
			b.Apply(c)
			snap := b.Snapshot()
			in := SnapshotInput{Services: mapValues(services), Routes: mapValues(routes)}
			history = append(history, published{snap, in})
			t.Run(fmt.Sprintf("%d/%d", round, step), func(t *testing.T) {
				if full, _ := NewSnapshot(in); snap.Routes() != full.Routes() {
					t.Fatalf("got %d routes, a full build has %d", snap.Routes(), full.Routes())
				}
				checkAgainstLinear(t, r, snap, in, 20)
				old := history[r.IntN(len(history))]
				checkAgainstLinear(t, r, old.snap, old.in, 10)
			})
		}
	}
}

func mapValues[T any](m map[string]T) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestRegexLiteralStart(t *testing.T) {
	tests := []struct{ expr, want string }{
		{`/v\d+`, "/v"},
		{`/abc`, "/abc"},
		{`/ab*`, "/a"},
		{`/a\.b`, "/a.b"},
		{`/caf\x{e9}`, "/caf\u00e9"},
		{`^/a|b`, ""},         // an alternation: "b" may match anywhere
		{`(?m)^/foo`, ""},     // multi-line: "^" may match after a newline
		{`(?i)/foo`, ""},      // no case-sensitive literal
		{`/(?i)foo`, "/"},     // the literal part before the flag
		{`(/a|/b)/x`, ""},     // a group first: tried for every path
		{`[/]a`, "/a"},        // a one-character class is a literal
		{`.*`, ""},            // nothing fixed
		{`\A/x`, ""},          // "^" is added before it: two anchors, not indexed
		{`^\Q/x.y\E`, "/x.y"}, // quoted text
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			re, err := compilePathRegex(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(regexLiteralStart(re)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
