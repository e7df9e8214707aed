package plugins

import (
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strconv"
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
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

// TestRequestTransformerTemplates: Kong renders $(…) values as Lua
// templates in its sandbox; they do not run here, so the plugin is
// refused at compile time (the node leaves it out with a warning).
func TestRequestTransformerTemplates(t *testing.T) {
	input := map[string]any{"id": "5f1e4a0c-0000-4000-8000-100000000099", "name": "request-transformer",
		"config": map[string]any{"add": map[string]any{"headers": []any{"x-q:$(query_params.q)"}}}}
	full, verr := entity.Plugins.Validate(input)
	if verr != nil {
		t.Fatal(verr)
	}
	raw, _ := json.Marshal(full)
	var p entity.Plugin
	_ = json.Unmarshal(raw, &p)
	if _, err := Compile(&Env{Index: NewIndex()}, &p); !errors.Is(err, errTemplate) {
		t.Errorf("got %v, want %v", err, errTemplate)
	}
}
