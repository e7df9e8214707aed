package plugins

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// response-transformer as kong/plugins/response-transformer's
// header_transformer.lua and body_transformer.lua do it (and
// spec/03-plugins/15-response-transformer): headers and top-level JSON
// fields removed, renamed, replaced, added and appended in that order,
// checks made against the answer as the upstream sent it, typed JSON
// values, Content-Length dropped from a JSON answer whose body changes.
func TestResponseTransformer(t *testing.T) {
	h := newHarness(t)
	h.answer = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("X-Old", "old value")
		w.Header().Set("X-Gone", "x")
		w.Header().Set("X-Replace", "before")
		w.Header().Set("X-Present", "kept")
		io.WriteString(w, `{"keep":1,"drop":"x","from":"moved","swap":"before","tags":"a","n":12345678901234567890}`)
	}
	h.plugin(`{"name":"response-transformer","route":{"id":"` + routeID + `"},"config":{
		"remove":{"headers":["X-Gone"],"json":["drop"]},
		"rename":{"headers":["X-Old:X-New"],"json":["from:to"]},
		"replace":{"headers":["X-Replace:after","X-Absent:never"],"json":["swap:after","absent:never"]},
		"add":{"headers":["X-Present:not this","X-Added:added"],"json":["keep:not this","count:3","flag:true","plain:text"],
		       "json_types":["string","number","boolean"]},
		"append":{"headers":["X-Present:more"],"json":["tags:b","list:first"]}}}`)
	res := h.do("GET", "/r/x", "")
	if res.status != 200 {
		t.Fatalf("got %d %s", res.status, res.body)
	}
	for name, want := range map[string][]string{
		"X-Gone": nil, "X-Old": nil, "X-New": {"old value"}, "X-Replace": {"after"}, "X-Absent": nil,
		"X-Added": {"added"}, "X-Present": {"kept", "more"},
	} {
		if got := res.header.Values(name); !reflect.DeepEqual(got, want) && !(len(got) == 0 && want == nil) {
			t.Errorf("header %s: got %q, want %q", name, got, want)
		}
	}
	var body map[string]any
	dec := json.NewDecoder(strings.NewReader(res.body))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body %q: %v", res.body, err)
	}
	want := map[string]any{
		"keep": json.Number("1"), "to": "moved", "swap": "after", "tags": []any{"a", "b"},
		"n": json.Number("12345678901234567890"), "count": json.Number("3"), "flag": true, "plain": "text",
		"list": []any{"first"},
	}
	if !reflect.DeepEqual(body, want) {
		t.Errorf("body: got %v, want %v", body, want)
	}
	if cl := res.header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(res.body)) {
		t.Errorf("Content-Length %s for a %d-byte body", cl, len(res.body))
	}

	// Not JSON: headers change, the body does not.
	h.answer = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, `{"drop":"x"}`)
	}
	if res := h.do("GET", "/r/x", ""); res.body != `{"drop":"x"}` || res.header.Get("X-Added") != "added" {
		t.Errorf("text answer: got %q with X-Added %q, want the body untouched and the header added", res.body, res.header.Get("X-Added"))
	}
}
