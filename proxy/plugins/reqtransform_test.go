package plugins

import (
	"encoding/json"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestRequestTransformer follows kong/plugins/request-transformer/access.lua
// (3.9) and the cases of spec/03-plugins/36-request-transformer/02-access_spec.lua:
// each list's operations in the order remove, rename, replace, add,
// append; the query re-encoded sorted; form and JSON bodies re-encoded
// only when changed; http_method (a form body moved into the query for
// GET) and replace.uri, as the upstream receives them.
func TestRequestTransformer(t *testing.T) {
	h := newHarness(t)
	h.plugin(`{"name":"request-transformer","route":{"id":"` + routeID + `"},"config":{
		"remove":{"headers":["x-gone"],"querystring":["q-gone"],"body":["b-gone"]},
		"rename":{"headers":["x-old:x-new"],"querystring":["q-old:q-new"],"body":["b-old:b-new"]},
		"replace":{"headers":["x-rep:replaced"],"querystring":["q-rep:replaced"],"body":["b-rep:replaced"]},
		"add":{"headers":["x-add:added","x-keep:not-used"],"querystring":["q-add:a b"],"body":["b-add:added"]},
		"append":{"headers":["x-app:two"],"querystring":["q-app:2"],"body":["b-app:2"]}}}`)
	h.plugin(`{"name":"request-transformer","route":{"id":"` + route2ID + `"},"config":{"http_method":"GET","replace":{"uri":"/fixed/path"}}}`)

	t.Run("headers", func(t *testing.T) {
		resp := h.do("GET", "/r", "", "X-Gone: 1", "X-Old: moved", "X-Rep: orig", "X-Keep: mine", "X-App: one")
		up, _ := h.last()
		if resp.status != 200 {
			t.Fatalf("got %d, want 200", resp.status)
		}
		want := map[string][]string{"X-Gone": nil, "X-Old": nil, "X-New": {"moved"}, "X-Rep": {"replaced"},
			"X-Add": {"added"}, "X-Keep": {"mine"}, "X-App": {"one", "two"}}
		for name, vals := range want {
			if got := up.Header.Values(name); !reflect.DeepEqual(got, vals) && !(len(got) == 0 && vals == nil) {
				t.Errorf("got upstream %s %q, want %q", name, got, vals)
			}
		}
	})
	t.Run("replace only what is there", func(t *testing.T) {
		h.do("GET", "/r", "")
		up, _ := h.last()
		if got := up.Header.Get("X-Rep"); got != "" {
			t.Errorf("got X-Rep %q, want none", got)
		}
		if got := up.Header.Values("X-App"); !reflect.DeepEqual(got, []string{"two"}) {
			t.Errorf("got X-App %q, want [two]", got)
		}
	})
	t.Run("querystring", func(t *testing.T) {
		h.do("GET", "/r/p?z=1&q-gone=x&q-old=o&q-rep=r&q-app=1", "")
		up, _ := h.last()
		// sorted by name, escaped as ngx.escape_uri does
		if want := "/p?q-add=a%20b&q-app=1&q-app=2&q-new=o&q-rep=replaced&z=1"; up.URI != want {
			t.Errorf("got upstream URI %q, want %q", up.URI, want)
		}
	})
	t.Run("form body", func(t *testing.T) {
		h.do("POST", "/r", "b-gone=1&b-old=o&b-rep=r&keep=k", "Content-Type: application/x-www-form-urlencoded")
		up, _ := h.last()
		got, _ := url.ParseQuery(up.Body)
		want := url.Values{"b-new": {"o"}, "b-rep": {"replaced"}, "keep": {"k"}, "b-add": {"added"}, "b-app": {"2"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got upstream body %q, want %v", up.Body, want)
		}
	})
	t.Run("json body", func(t *testing.T) {
		h.do("POST", "/r", `{"b-gone":1,"b-old":{"x":1},"b-rep":5,"b-app":"1","n":12345678901234567890}`, "Content-Type: application/json")
		up, _ := h.last()
		want := `{"b-add":"added","b-app":["1","2"],"b-new":{"x":1},"b-rep":"replaced","n":12345678901234567890}`
		var g, w any
		_ = json.Unmarshal([]byte(up.Body), &g)
		_ = json.Unmarshal([]byte(want), &w)
		if !reflect.DeepEqual(g, w) || up.Header.Get("Content-Length") != strconv.Itoa(len(up.Body)) {
			t.Errorf("got upstream body %s (Content-Length %s), want %s", up.Body, up.Header.Get("Content-Length"), want)
		}
	})
	t.Run("json body that does not parse passes unchanged", func(t *testing.T) {
		h.do("POST", "/r", `{"b-gone":`, "Content-Type: application/json")
		up, _ := h.last()
		if up.Body != `{"b-gone":` {
			t.Errorf("got upstream body %q, want it unchanged", up.Body)
		}
	})
	t.Run("http_method GET moves a form body into the query; replace.uri", func(t *testing.T) {
		h.do("POST", "/r2/x?a=1", "b=2&a=3", "Content-Type: application/x-www-form-urlencoded")
		up, _ := h.last()
		if up.Method != "GET" || up.URI != "/fixed/path?a=1&a=3&b=2" {
			t.Errorf("got upstream %s %s, want GET /fixed/path?a=1&a=3&b=2", up.Method, up.URI)
		}
	})
}

// TestRequestTransformerTemplates follows kong/plugins/
// request-transformer/access.lua (3.9): values with $(…) are pl.template
// templates rendered in the sandbox against the client's request
// (headers, read in any case and with "_" for "-"; query_params;
// uri_captures, the router's: [0] the whole match, groups by number and
// name; shared), each expression as tostring(expr or ”); only type and
// those names are there (string, os, io are nil). An error, or an
// expression that never ends, answers Kong's 500.
func TestRequestTransformerTemplates(t *testing.T) {
	tests := []struct {
		name    string
		config  string
		target  string
		headers []string
		check   func(t *testing.T, up seenRequest)
	}{
		{"headers and default", `{"add":{"headers":["x-got:$(headers[\"x-a\"] or \"none\")","x-none:$(headers[\"x-missing\"] or \"none\")","x-under:$(headers.x_a)"]}}`,
			"/r/p", []string{"X-A: va"}, func(t *testing.T, up seenRequest) {
				for h, want := range map[string]string{"X-Got": "va", "X-None": "none", "X-Under": "va"} {
					if got := up.Header.Get(h); got != want {
						t.Errorf("got %s %q, want %q", h, got, want)
					}
				}
			}},
		{"query params around text", `{"add":{"querystring":["q2:pre-$(query_params.q)-post"]}}`,
			"/r/p?q=v", nil, func(t *testing.T, up seenRequest) {
				if up.URI != "/p?q=v&q2=pre-v-post" {
					t.Errorf("got %s, want /p?q=v&q2=pre-v-post", up.URI)
				}
			}},
		{"uri captures in the uri", `{"replace":{"uri":"/users/$(uri_captures.user)/$(uri_captures[2])"},"add":{"headers":["x-whole:$(uri_captures[0])"]}}`,
			"/cap/alice/42", nil, func(t *testing.T, up seenRequest) {
				if up.URI != "/users/alice/42" || up.Header.Get("X-Whole") != "/cap/alice/42" {
					t.Errorf("got %s with X-Whole %q, want /users/alice/42 and /cap/alice/42", up.URI, up.Header.Get("X-Whole"))
				}
			}},
		{"body field", `{"add":{"body":["b:$(query_params.q)"]}}`,
			"/r/p?q=v", []string{"Content-Type: application/x-www-form-urlencoded"}, func(t *testing.T, up seenRequest) {
				if up.Body != "a=1&b=v" {
					t.Errorf("got body %q, want a=1&b=v", up.Body)
				}
			}},
		{"a template of a string writes $( literally", `{"add":{"headers":["x-lit:$('$(x)')"]}}`,
			"/r/p", nil, func(t *testing.T, up seenRequest) {
				if got := up.Header.Get("X-Lit"); got != "$(x)" {
					t.Errorf("got %q, want $(x)", got)
				}
			}},
		{"only the template environment", `{"add":{"headers":["x-env:$(type(string))$(type(os))$(type(io))$(type(headers))"]}}`,
			"/r/p", nil, func(t *testing.T, up seenRequest) {
				if got := up.Header.Get("X-Env"); got != "nilnilniltable" {
					t.Errorf("got %q, want nilnilniltable", got)
				}
			}},
	}
	h := newHarness(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.plugins = nil
			h.plugin(`{"name":"request-transformer","config":` + tc.config + `}`)
			body := ""
			if len(tc.headers) > 0 && strings.Contains(tc.headers[0], "form") {
				body = "a=1"
			}
			method := "GET"
			if body != "" {
				method = "POST"
			}
			resp := h.do(method, tc.target, body, tc.headers...)
			up, ok := h.last()
			if resp.status != 200 || !ok {
				t.Fatalf("got %d %s (upstream called: %t), want 200", resp.status, resp.body, ok)
			}
			tc.check(t, up)
		})
	}
	for _, tc := range []struct{ name, value string }{
		{"runtime error", `x-e:$(nil .. 1)`},
		{"endless expression", `x-e:$((function() while true do end end)())`},
		{"header template that does not compile", `x-e:$(1 +)`},
	} {
		t.Run(tc.name+" answers 500", func(t *testing.T) {
			h.plugins = nil
			h.plugin(`{"name":"request-transformer","config":{"add":{"headers":["` + strings.ReplaceAll(tc.value, `"`, `\"`) + `"]}}}`)
			resp := h.do("GET", "/r/p", "")
			if _, called := h.last(); resp.status != 500 || kongMessage(resp.body) != "An unexpected error occurred" || called {
				t.Errorf("got %d %s (upstream called: %t), want 500 An unexpected error occurred", resp.status, resp.body, called)
			}
		})
	}
}
