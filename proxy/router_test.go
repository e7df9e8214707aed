package proxy

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/grapevine-gw/grapevine/entity"
)

// Route ids: tie-breaks compare them, so their order matters (idB > idA).
const (
	idA = "aaaaaaaa-0000-4000-8000-000000000000"
	idB = "bbbbbbbb-0000-4000-8000-000000000000"
	idC = "cccccccc-0000-4000-8000-000000000000"
)

type testReq struct {
	method  string
	host    string // as in the Host header, port allowed
	port    int    // local port
	path    string // raw; normalised before matching
	headers map[string]string
	sni     string // the TLS server name; "" for a plain request
}

// matchRoute routes req through a snapshot of routes and returns the id of
// the matched route ("" for none) and the matched path length.
func matchRoute(t *testing.T, routes []entity.Route, tr testReq) (string, int) {
	t.Helper()
	snap := mustSnapshot(t, nil, routes)
	var h fasthttp.RequestHeader
	for k, v := range tr.headers {
		h.Set(k, v)
	}
	method := tr.method
	if method == "" {
		method = "GET"
	}
	port := tr.port
	if port == 0 {
		port = 8000
	}
	var st reqState
	host, hostPort := lowerHost(&st, []byte(tr.host))
	if hostPort != 0 {
		port = hostPort
	}
	req := request{
		method: []byte(method),
		host:   host,
		port:   port,
		path:   entity.AppendNormalizedPath(nil, []byte(tr.path)),
		header: &h,
		tls:    tr.sni != "",
		sni:    tr.sni,
	}
	m, n := snap.match(&req)
	if m == nil {
		return "", n
	}
	return m.route.id, n
}

func TestRouterMatching(t *testing.T) {
	tests := []struct {
		name   string
		routes []entity.Route
		req    testReq
		want   string
	}{
		{"prefix path matches", []entity.Route{testRoute(idA, "", paths("/foo"))}, testReq{path: "/foo/bar"}, idA},
		{"prefix is a plain string prefix", []entity.Route{testRoute(idA, "", paths("/foo"))}, testReq{path: "/foobar"}, idA},
		{"prefix mismatch", []entity.Route{testRoute(idA, "", paths("/foo"))}, testReq{path: "/fo"}, ""},
		{"trailing slash route needs the slash", []entity.Route{testRoute(idA, "", paths("/foo/"))}, testReq{path: "/foo"}, ""},
		{"trailing slash request matches plain route", []entity.Route{testRoute(idA, "", paths("/foo"))}, testReq{path: "/foo/"}, idA},
		{"path is normalised: dot segments", []entity.Route{testRoute(idA, "", paths("/b"))}, testReq{path: "/a/../b/c"}, idA},
		{"path is normalised: unreserved escapes", []entity.Route{testRoute(idA, "", paths("/abc"))}, testReq{path: "/%61bc"}, idA},
		{"path is normalised: double slashes", []entity.Route{testRoute(idA, "", paths("/a/b"))}, testReq{path: "//a//b"}, idA},
		{"reserved escapes stay escaped", []entity.Route{testRoute(idA, "", paths("/a/b"))}, testReq{path: "/a%2fb"}, ""},
		{"regex anchored at start", []entity.Route{testRoute(idA, "", paths(`~/v\d+`))}, testReq{path: "/x/v1"}, ""},
		{"regex matches at start", []entity.Route{testRoute(idA, "", paths(`~/v\d+`))}, testReq{path: "/v12/users"}, idA},
		{"regex not anchored at end", []entity.Route{testRoute(idA, "", paths(`~/v\d+$`))}, testReq{path: "/v12/users"}, ""},
		{"regex named capture", []entity.Route{testRoute(idA, "", paths(`~/(?<ver>v\d+)/x`))}, testReq{path: "/v1/x"}, idA},
		{"exact host", []entity.Route{testRoute(idA, "", hosts("a.com"))}, testReq{host: "a.com", path: "/"}, idA},
		{"host is case-insensitive and port-less", []entity.Route{testRoute(idA, "", hosts("a.com"))}, testReq{host: "A.Com:8000", path: "/"}, idA},
		{"host mismatch", []entity.Route{testRoute(idA, "", hosts("a.com"))}, testReq{host: "b.com", path: "/"}, ""},
		{"suffix wildcard one label", []entity.Route{testRoute(idA, "", hosts("*.a.com"))}, testReq{host: "x.a.com", path: "/"}, idA},
		{"suffix wildcard any depth", []entity.Route{testRoute(idA, "", hosts("*.a.com"))}, testReq{host: "x.y.a.com", path: "/"}, idA},
		{"suffix wildcard needs a label", []entity.Route{testRoute(idA, "", hosts("*.a.com"))}, testReq{host: "a.com", path: "/"}, ""},
		{"prefix wildcard", []entity.Route{testRoute(idA, "", hosts("a.*"))}, testReq{host: "a.org", path: "/"}, idA},
		{"prefix wildcard mismatch", []entity.Route{testRoute(idA, "", hosts("a.*"))}, testReq{host: "b.a.org", path: "/"}, ""},
		{"host:port matches the local port", []entity.Route{testRoute(idA, "", hosts("a.com:8000"))}, testReq{host: "a.com", port: 8000, path: "/"}, idA},
		// Kong's router takes the port from the Host header, the local port
		// only when the header has none (kong/router/fields.lua net.dst.port).
		{"host:port matches the Host header's port", []entity.Route{testRoute(idA, "", hosts("a.com:8443"))}, testReq{host: "a.com:8443", port: 8000, path: "/"}, idA},
		{"host:port other Host header port", []entity.Route{testRoute(idA, "", hosts("a.com:8443"))}, testReq{host: "a.com:8000", port: 8443, path: "/"}, ""},
		{"method matches", []entity.Route{testRoute(idA, "", methods("POST"))}, testReq{method: "POST", path: "/"}, idA},
		{"method mismatch", []entity.Route{testRoute(idA, "", methods("POST"))}, testReq{method: "GET", path: "/"}, ""},
		{"header value case-insensitive", []entity.Route{testRoute(idA, "", headers("X-Version", "V1"))}, testReq{path: "/", headers: map[string]string{"x-version": "v1"}}, idA},
		{"header missing", []entity.Route{testRoute(idA, "", headers("X-Version", "v1"))}, testReq{path: "/"}, ""},
		{"header regex", []entity.Route{testRoute(idA, "", headers("X-Version", `~*^v\d$`))}, testReq{path: "/", headers: map[string]string{"X-Version": "V7"}}, idA},
		{"all fields must match", []entity.Route{testRoute(idA, "", hosts("a.com"), paths("/x"), methods("GET"))}, testReq{host: "a.com", path: "/y"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := matchRoute(t, tt.routes, tt.req)
			if got != tt.want {
				t.Errorf("got route %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRouterPriority covers each rule of reference §2.3: the first route of
// each case is the one that must lose, so list order cannot be what wins.
func TestRouterPriority(t *testing.T) {
	tests := []struct {
		name   string
		routes []entity.Route
		req    testReq
		want   string
	}{
		{"method+path beats path",
			[]entity.Route{testRoute(idB, "", paths("/a")), testRoute(idA, "", paths("/a"), methods("GET"))},
			testReq{path: "/a"}, idA},
		{"more fields beat a longer path",
			[]entity.Route{testRoute(idB, "", paths("/long/path")), testRoute(idA, "", paths("/"), hosts("a.com"))},
			testReq{host: "a.com", path: "/long/path"}, idA},
		{"plain host beats wildcard host",
			[]entity.Route{testRoute(idB, "", hosts("*.a.com")), testRoute(idA, "", hosts("x.a.com"))},
			testReq{host: "x.a.com", path: "/"}, idA},
		{"mixed plain and wildcard hosts are not plain-only",
			[]entity.Route{testRoute(idB, "", hosts("x.a.com", "*.b.com")), testRoute(idA, "", hosts("x.a.com"))},
			testReq{host: "x.a.com", path: "/"}, idA},
		{"plain host bit beats header count",
			[]entity.Route{testRoute(idB, "", hosts("*.a.com"), headers("X-A", "1", "X-B", "2")), testRoute(idA, "", hosts("x.a.com"), headers("X-A", "1"))},
			testReq{host: "x.a.com", path: "/", headers: map[string]string{"X-A": "1", "X-B": "2"}}, idA},
		{"more headers beat fewer",
			[]entity.Route{testRoute(idB, "", headers("X-A", "1")), testRoute(idA, "", headers("X-A", "1", "X-B", "2"))},
			testReq{path: "/", headers: map[string]string{"X-A": "1", "X-B": "2"}}, idA},
		{"header count beats regex",
			[]entity.Route{testRoute(idB, "", paths(`~/a`), headers("X-A", "1")), testRoute(idA, "", paths("/a"), headers("X-A", "1", "X-B", "2"))},
			testReq{path: "/a", headers: map[string]string{"X-A": "1", "X-B": "2"}}, idA},
		{"regex beats prefix",
			[]entity.Route{testRoute(idB, "", paths("/version/any")), testRoute(idA, "", paths(`~/version/\w+`))},
			testReq{path: "/version/any"}, idA},
		{"higher regex_priority wins",
			[]entity.Route{testRoute(idB, "", paths(`~/status/\d+`)), testRoute(idA, "", paths(`~/version/\d+/status/\d+`), regexPriority(6))},
			testReq{path: "/version/1/status/2"}, idA},
		{"negative regex_priority loses to zero",
			[]entity.Route{testRoute(idB, "", paths(`~/s`), regexPriority(-1)), testRoute(idA, "", paths(`~/s`))},
			testReq{path: "/s"}, idA},
		{"regex_priority ignored for prefix paths",
			[]entity.Route{testRoute(idB, "", paths("/a"), regexPriority(100)), testRoute(idA, "", paths("/a/b"))},
			testReq{path: "/a/b"}, idA},
		{"longest prefix wins",
			[]entity.Route{testRoute(idB, "", paths("/a")), testRoute(idA, "", paths("/a/b"))},
			testReq{path: "/a/b/c"}, idA},
		{"tie goes to the greater uuid",
			[]entity.Route{testRoute(idA, "", paths("/a")), testRoute(idB, "", paths("/a"))},
			testReq{path: "/a"}, idB},
		{"tie goes to the greater uuid whatever the order",
			[]entity.Route{testRoute(idB, "", paths("/a")), testRoute(idA, "", paths("/a"))},
			testReq{path: "/a"}, idB},
		{"split paths: each path has its own priority (long)",
			[]entity.Route{testRoute(idB, "", paths("/abc")), testRoute(idA, "", paths("/a", "/abc/def"))},
			testReq{path: "/abc/def/x"}, idA},
		{"split paths: each path has its own priority (short)",
			[]entity.Route{testRoute(idA, "", paths("/a", "/abc/def")), testRoute(idB, "", paths("/abc"))},
			testReq{path: "/abc/x"}, idB},
		{"snis count in match weight",
			[]entity.Route{testRoute(idB, "", paths("/a")), testRoute(idA, "", paths("/a"), snis("a.com"))},
			testReq{path: "/a"}, idA},
		// transform.lua: snis are matched on https requests only.
		{"sni matches a TLS request",
			[]entity.Route{testRoute(idB, "", paths("/a")), testRoute(idA, "", paths("/a"), snis("a.com"))},
			testReq{path: "/a", sni: "a.com"}, idA},
		{"another sni does not",
			[]entity.Route{testRoute(idB, "", paths("/a")), testRoute(idA, "", paths("/a"), snis("a.com"))},
			testReq{path: "/a", sni: "b.com"}, idB},
		{"leftmost wildcard sni",
			[]entity.Route{testRoute(idB, "", paths("/a")), testRoute(idA, "", paths("/a"), snis("*.a.com"))},
			testReq{path: "/a", sni: "x.a.com"}, idA},
		{"rightmost wildcard sni",
			[]entity.Route{testRoute(idB, "", paths("/a")), testRoute(idA, "", paths("/a"), snis("a.*"))},
			testReq{path: "/a", sni: "a.org"}, idA},
		{"rightmost wildcard sni, another name",
			[]entity.Route{testRoute(idB, "", paths("/a")), testRoute(idA, "", paths("/a"), snis("a.*"))},
			testReq{path: "/a", sni: "b.org"}, idB},
		{"a plain request ignores snis",
			[]entity.Route{testRoute(idA, "", paths("/a"), snis("a.com"))},
			testReq{path: "/a"}, idA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := matchRoute(t, tt.routes, tt.req)
			if got != tt.want {
				t.Errorf("got route %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRoutePriorityBits(t *testing.T) {
	tests := []struct {
		name  string
		route entity.Route
		want  uint64
	}{
		{"path only", testRoute(idA, "", paths("/abc")), 1<<61 | 4},
		{"plain host and path", testRoute(idA, "", paths("/"), hosts("a.com")), 2<<61 | 1<<60 | 1},
		{"wildcard host", testRoute(idA, "", hosts("*.a.com")), 1 << 61},
		{"two headers", testRoute(idA, "", headers("a", "1", "b", "2")), 1<<61 | 2<<52},
		{"regex with priority", testRoute(idA, "", paths(`~/x`), regexPriority(3), methods("GET")),
			2<<61 | 1<<51 | uint64(3+1<<31)<<19},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := routePriority(&tt.route, tt.route.Paths); got != tt.want {
				t.Errorf("got %#x, want %#x", got, tt.want)
			}
		})
	}
}

func TestSnapshotWarnings(t *testing.T) {
	routes := []entity.Route{
		testRoute(idA, "", paths(`~/(?=x)`)), // look-ahead: RE2 cannot
		testRoute(idB, "", paths("/ok")),
	}
	snap, warnings := NewSnapshot(SnapshotInput{Routes: routes})
	if len(warnings) != 1 {
		t.Fatalf("got %d warnings, want 1: %v", len(warnings), warnings)
	}
	if got := snap.Routes(); got != 1 {
		t.Errorf("got %d routes, want 1", got)
	}
}

func TestSplitRouteIDs(t *testing.T) {
	// Kong names split routes uuid_v5(namespace, id.."#"..index).
	ms, err := compileRoute(&entity.Route{ID: idA, Paths: []string{"/a", "/bb"}}, &route{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if len(ms) != 2 {
		t.Fatalf("got %d matchers, want 2", len(ms))
	}
	if ms[0].id == idA || ms[0].id == ms[1].id {
		t.Errorf("got ids %q and %q, want two distinct derived ids", ms[0].id, ms[1].id)
	}
}

func TestMatchAllocs(t *testing.T) {
	snap := mustSnapshot(t, nil, []entity.Route{
		testRoute(idA, "", paths("/a"), hosts("a.com")),
		testRoute(idB, "", paths("/b", "/bbb"), methods("GET", "POST")),
		testRoute(idC, "", paths("/"), headers("X-A", "1")),
	})
	var h fasthttp.RequestHeader
	h.Set("X-A", "1")
	req := request{method: []byte("GET"), host: []byte("b.com"), port: 8000, path: []byte("/c"), header: &h}
	allocs := testing.AllocsPerRun(100, func() {
		if m, _ := snap.match(&req); m == nil || m.route.id != idC {
			t.Fatalf("unexpected match %v", m)
		}
	})
	if allocs != 0 {
		t.Errorf("got %v allocs per match, want 0", allocs)
	}
}
