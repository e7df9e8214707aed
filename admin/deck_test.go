package admin

import (
	"net/http"
	"strings"
	"testing"
)

// decK creates a cors plugin from a file that names only origins, then
// reads it back and diffs: fields without a default in Kong's
// kong/plugins/cors/schema.lua (headers, exposed_headers) must read back
// null, not [], and the plugin schema must not claim "default": null, or
// every `deck gateway diff` shows an update that never goes away.
func TestDeckCorsArraysWithoutDefaultStayNull(t *testing.T) {
	e := newTestEnv(t)
	p := e.mustCreate("/plugins", `{"name":"cors","config":{"origins":["*"]}}`)
	cfg := mustJSON(t, p["config"])
	for _, f := range []string{`"headers":null`, `"exposed_headers":null`} {
		if !strings.Contains(cfg, f) {
			t.Errorf("created plugin: got %s, want %s", cfg, f)
		}
	}
	schema := e.json(http.MethodGet, "/schemas/plugins/cors", "")
	mustStatus(t, schema, http.StatusOK)
	if s := mustJSON(t, schema.body); strings.Contains(s, `"default":null`) {
		t.Errorf("schema: got %s, want no \"default\":null", s)
	}
}
