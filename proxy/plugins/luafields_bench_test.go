package plugins

import (
	"testing"

	"github.com/grapevine-gw/grapevine/internal/luasandbox"
)

// BenchmarkCustomFieldsApply is the background cost of one record with
// two custom_fields_by_lua chunks: decode the record, run both, encode.
func BenchmarkCustomFieldsApply(b *testing.B) {
	env := &Env{}
	cf, err := compileCustomFields(env, "bench", map[string]string{
		"a":   `return kong.request.get_header("x-a") or "none"`,
		"b.c": `return kong.response.get_status() * 2`,
	})
	if err != nil {
		b.Fatal(err)
	}
	s := newLuaState(env)
	defer s.Close()
	v := &luaView{method: "GET", path: "/p", headers: []luaHeader{{"X-A", "1"}, {"Host", "h"}}, status: 200,
		record: []byte(`{"request":{"uri":"/p","headers":{"x-a":"1","host":"h"}},"response":{"status":200},"client_ip":"127.0.0.1"}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, keep := cf.apply(s, v); !keep {
			b.Fatal("a chunk failed")
		}
	}
}

// BenchmarkTemplateRender is the request path's cost of rendering one
// request-transformer template value (the view's copy of the request
// left out).
func BenchmarkTemplateRender(b *testing.B) {
	tmpl, err := luasandbox.CompileTemplate(`pre-$(headers["x-a"] or "none")`)
	if err != nil {
		b.Fatal(err)
	}
	s := newLuaState(&Env{})
	defer s.Close()
	s.view = &luaView{headers: []luaHeader{{"X-A", "1"}, {"Host", "h"}}}
	b.ReportAllocs()
	for b.Loop() {
		if out, err := s.Render(tmpl, s.templateEnv(), luaRunLimit); err != nil || out != "pre-1" {
			b.Fatalf("got %q, %v", out, err)
		}
	}
}
