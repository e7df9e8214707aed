package proxy

import (
	"github.com/grapevine-gw/grapevine/entity"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestAppendEscapedPath(t *testing.T) {
	// Kong escapes the upstream URI (kong/runloop/handler.lua, escape in
	// kong/tools/uri.lua): reserved, unreserved and "%" stay, the rest is %XX.
	tests := []struct{ in, want string }{
		{"/a/b", "/a/b"},
		{"/q\"uote", "/q%22uote"},
		{"/bar|", "/bar%7C"},
		{"/caf\xc3\xa9", "/caf%C3%A9"},
		{"/sp ace", "/sp%20ace"},
		{"/keep!#$&'()*+,:;=?@[]-_.~%41", "/keep!#$&'()*+,:;=?@[]-_.~%41"},
		{"/<>{}^`\\", "/%3C%3E%7B%7D%5E%60%5C"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := string(appendEscapedPath(nil, []byte(tt.in))); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if got := needsEscaping([]byte(tt.in)); got != (tt.in != tt.want) {
				t.Errorf("needsEscaping: got %v, want %v", got, tt.in != tt.want)
			}
		})
	}
}

// FuzzAppendEscapedPath checks that the escaped path has only safe bytes
// and decodes back to the input.
func FuzzAppendEscapedPath(f *testing.F) {
	for _, seed := range []string{"/a", "/q\"|", "/caf\xc3\xa9", "/ %00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := appendEscapedPath(nil, []byte(in))
		if needsEscaping(out) {
			t.Fatalf("escape(%q) = %q has unsafe bytes", in, out)
		}
		if len(out) < len(in) {
			t.Fatalf("escape(%q) = %q lost bytes", in, out)
		}
	})
}

// FuzzSplitRequestURI checks that the splitter never panics and that path
// and query are parts of the target.
func FuzzSplitRequestURI(f *testing.F) {
	for _, seed := range []string{"/a?b", "http://h:1/p?q", "https://u@h", "?", "/a?", "x://", "*"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		authority, path, query := splitRequestURI([]byte(in))
		if !strings.Contains(in, string(query)) || (len(query) > 0 && query[0] != '?') {
			t.Fatalf("split(%q): query %q", in, query)
		}
		if string(path) != "/" && !strings.Contains(in, string(path)) {
			t.Fatalf("split(%q): path %q is not in the target", in, path)
		}
		if !strings.Contains(in, string(authority)) {
			t.Fatalf("split(%q): authority %q is not in the target", in, authority)
		}
	})
}

// Escaped request paths route on their decoded form and reach the
// upstream escaped again, as Kong's router and handler do
// (kong/router/utils.lua strip_uri_args, kong/runloop/handler.lua escape).
func TestEscapedPathsRouteAndForward(t *testing.T) {
	up := newUpstream(t, nil)
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{
		testRoute("r1", "s1", paths("/café"), noStrip),
		testRoute("r2", "s1", paths("/sp ace"), noStrip),
		testRoute("r3", "s1", paths("/raw"), noStrip),
	})
	s := startProxy(t, snap)
	tests := []struct{ target, wantURI string }{
		{"/caf%C3%A9/x", "/caf%C3%A9/x"},
		{"/caf%c3%a9", "/caf%C3%A9"},
		{"/sp%20ace?q=%20", "/sp%20ace?q=%20"},
		{"/raw/%22q%22%7c", "/raw/%22q%22%7C"},
		{"/raw/a%2Fb", "/raw/a%2Fb"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			resp, body := rawResponse(t, s, "GET "+tt.target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != 200 {
				t.Fatalf("got %d %q, want 200", resp.StatusCode, body)
			}
			if got := up.last(t).URI; got != tt.wantURI {
				t.Errorf("upstream got %q, want %q", got, tt.wantURI)
			}
		})
	}
}

// Error bodies follow Kong's get_response_type (kong/tools/http.lua): the
// first media type with the highest q, JSON for one without a template;
// nginx's errors fall back to Content-Type, then error_default_type.
func TestErrorBodyNegotiation(t *testing.T) {
	s, _ := echoProxy(t, func(*Config) {})
	tests := []struct {
		name, path string
		header     map[string]string
		wantType   string
	}{
		{"kong error, no Accept", "/nowhere", nil, "application/json; charset=utf-8"},
		{"kong error, xml", "/nowhere", map[string]string{"Accept": "application/xml"}, "application/xml; charset=utf-8"},
		{"kong error, html", "/nowhere", map[string]string{"Accept": "text/html"}, "text/html; charset=utf-8"},
		{"kong error, text/*", "/nowhere", map[string]string{"Accept": "text/*"}, "text/plain; charset=utf-8"},
		{"kong error, highest q", "/nowhere", map[string]string{"Accept": "text/html;q=0.5, application/xml;q=0.9"}, "application/xml; charset=utf-8"},
		{"kong error, unknown type", "/nowhere", map[string]string{"Accept": "image/png"}, "application/json; charset=utf-8"},
		{"nginx error, nothing named", "/any", nil, "text/plain; charset=utf-8"},
		{"nginx error, Content-Type", "/any", map[string]string{"Content-Type": "application/xml"}, "application/xml; charset=utf-8"},
		{"nginx error, Accept wins", "/any", map[string]string{"Content-Type": "application/xml", "Accept": "application/json"}, "application/json; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := "GET " + tt.path + " HTTP/1.1\r\nHost: b.test\r\n" // no route
			if tt.path == "/any" {
				raw = "TRACE /any HTTP/1.1\r\nHost: a.test\r\n" // refused by nginx's rules
			}
			for k, v := range tt.header {
				raw += k + ": " + v + "\r\n"
			}
			resp, body := rawResponse(t, s, raw+"\r\n")
			if got := resp.Header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("got %q (%q), want %q", got, body, tt.wantType)
			}
			if tt.wantType == "application/xml; charset=utf-8" && !strings.HasPrefix(body, "<?xml") {
				t.Errorf("got %q, want Kong's XML template", body)
			}
		})
	}
}

// Hop-by-hop headers stay on their hop, both ways, as Kong's access and
// header_filter phases clear them (kong/runloop/handler.lua): headers a
// Connection header names, Proxy (httpoxy), TE but for "trailers", and the
// upstream's Upgrade and Trailer.
func TestHopByHopHeaders(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Secret")
		w.Header().Set("X-Secret", "upstream only")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Upgrade", "h2c")
		w.Header().Set("Trailer", "X-T")
		w.Header().Set("X-Kept", "yes")
		io.WriteString(w, "ok")
		w.Header().Set("X-T", "trailer")
	})
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute("r1", "s1", paths("/"))})
	s := startProxy(t, snap)
	t.Run("request", func(t *testing.T) {
		tests := []struct {
			name, headers string
			gone          []string
			want          map[string]string
		}{
			{"named by Connection", "Connection: X-Drop, keep-alive\r\nX-Drop: 1\r\nX-Keep: 1\r\n", []string{"X-Drop"}, map[string]string{"X-Keep": "1"}},
			{"httpoxy", "Proxy: http://evil.test\r\n", []string{"Proxy"}, nil},
			{"TE with trailers", "TE: deflate, trailers\r\n", nil, map[string]string{"Te": "trailers"}},
			{"TE without trailers", "TE: deflate\r\n", []string{"Te"}, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp, _ := rawResponse(t, s, "GET / HTTP/1.1\r\nHost: x\r\n"+tt.headers+"\r\n")
				if resp.StatusCode != 200 {
					t.Fatalf("got %d, want 200", resp.StatusCode)
				}
				got := up.last(t).Header
				for _, name := range tt.gone {
					if v, ok := got[http.CanonicalHeaderKey(name)]; ok {
						t.Errorf("upstream got %s: %q, want it dropped", name, v)
					}
				}
				for name, want := range tt.want {
					if v := got.Get(name); v != want {
						t.Errorf("upstream got %s %q, want %q", name, v, want)
					}
				}
			})
		}
	})
	t.Run("response", func(t *testing.T) {
		resp, body := rawResponse(t, s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, body)
		}
		for _, name := range []string{"X-Secret", "Keep-Alive", "Upgrade", "Trailer"} {
			if v, ok := resp.Header[name]; ok {
				t.Errorf("client got %s: %q, want it dropped", name, v)
			}
		}
		if resp.Header.Get("X-Kept") != "yes" || resp.Close {
			t.Errorf("got X-Kept %q, close %v; want the other headers and a kept connection", resp.Header.Get("X-Kept"), resp.Close)
		}
	})
}

// Requests whose framing two parsers could read differently are refused
// and their connection closed (no smuggling): RFC 9112 §6.3.
func TestAmbiguousFramingRefused(t *testing.T) {
	s, up := echoProxy(t, func(*Config) {})
	tests := []struct{ name, raw string }{
		{"Content-Length and Transfer-Encoding", "POST /any HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"two different Content-Lengths", "POST /any HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"},
		{"Transfer-Encoding other than chunked", "POST /any HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip\r\n\r\nabcd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.count()
			resp, body := rawResponse(t, s, tt.raw)
			if resp.StatusCode != 400 || !resp.Close {
				t.Fatalf("got %d %q close %v, want 400 and the connection closed", resp.StatusCode, body, resp.Close)
			}
			if up.count() != before {
				t.Errorf("the upstream got the request, want it stopped at the proxy")
			}
		})
	}
}
