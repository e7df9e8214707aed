package plugins

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// TestHTTPLogCustomFieldsByLua follows kong/plugins/http-log/handler.lua
// (3.9): each custom_fields_by_lua value runs in the sandbox
// (kong/tools/sandbox.lua, env kong and ngx) and its result is set at
// that dotted field of the record (kong/pdk/log.lua set_serialize_value),
// nil removing the field. The PDK reads the request as received
// (Authorization unredacted), the response, the client, the router's
// route and service. A chunk that fails or never ends leaves its field
// out; the request and the other fields are unaffected.
func TestHTTPLogCustomFieldsByLua(t *testing.T) {
	recv := newLogReceiver(t, nil)
	h := newHarness(t)
	t.Cleanup(h.env.Close)
	fields := map[string]string{
		"static":                        "return 42",
		"nested.header":                 `return kong.request.get_header("x-a") or "none"`,
		"nested.underscore":             `return kong.request.get_header("x_a")`,
		"auth":                          `return kong.request.get_header("Authorization")`,
		"multi":                         `return kong.request.get_headers()["x-multi"]`,
		"req":                           `return kong.request.get_method() .. " " .. kong.request.get_path() .. " " .. kong.request.get_host() .. " " .. kong.request.get_scheme()`,
		"query":                         `return kong.request.get_query()`,
		"qarg":                          `return kong.request.get_query_arg("a")`,
		"status":                        `return kong.response.get_status()`,
		"upstream_header":               `return kong.response.get_header("x-up")`,
		"ip":                            `return kong.client.get_ip()`,
		"route_id":                      `return kong.router.get_route().id`,
		"service_id":                    `return kong.router.get_service().id`,
		"consumer":                      `return kong.client.get_consumer()`,
		"upper":                         `return string.upper(ngx.var.request_method) .. os.date("!%Y", 0)`,
		"serialized":                    `return kong.log.serialize().request.uri`,
		"z_sees_earlier":                `return kong.log.serialize().static`,
		"ctx_a":                         `kong.ctx.shared.n = 7 return true`,
		"ctx_b":                         `return kong.ctx.shared.n`,
		"request.headers.authorization": `return nil`,
		"forbidden":                     `return type(os.execute) .. type(io) .. type(require)`,
		"runtime_error":                 `error("boom")`,
		"loops":                         `while true do end`,
		"function":                      `return function() end`,
	}
	raw, _ := json.Marshal(fields)
	h.answer = func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("X-Up", "u1"); w.WriteHeader(201) }
	h.plugin(fmt.Sprintf(`{"name":"http-log","config":{"http_endpoint":%q,"custom_fields_by_lua":%s}}`, recv.URL, raw))

	resp := h.do("GET", "/r/p?a=1&a=2", "", "X-A: va", "X-Multi: m1", "X-Multi: m2", "Authorization: secret")
	if resp.status != 201 {
		t.Fatalf("got %d, want the upstream's 201", resp.status)
	}
	bodies, _ := recv.waitFor(t, 1)
	var rec map[string]any
	if err := json.Unmarshal(bodies[0], &rec); err != nil {
		t.Fatal(err)
	}
	request, _ := rec["request"].(map[string]any)
	headers, _ := request["headers"].(map[string]any)
	tests := []struct {
		name      string
		got, want any
	}{
		{"static", rec["static"], float64(42)},
		{"nested header", rec["nested"], map[string]any{"header": "va", "underscore": "va"}},
		{"authorization as received", rec["auth"], "secret"},
		{"repeated header", rec["multi"], []any{"m1", "m2"}},
		{"request line", rec["req"], "GET /r/p 127.0.0.1 http"},
		{"query", rec["query"], map[string]any{"a": []any{"1", "2"}}},
		{"query arg", rec["qarg"], "1"},
		{"status", rec["status"], float64(201)},
		{"response header", rec["upstream_header"], "u1"},
		{"client ip", rec["ip"], "127.0.0.1"},
		{"route", rec["route_id"], routeID},
		{"service", rec["service_id"], serviceID},
		{"no consumer: nil removes nothing", hasKey(rec, "consumer"), false},
		{"string, ngx.var, os.date", rec["upper"], "GET1970"},
		{"kong.log.serialize", rec["serialized"], "/r/p?a=1&a=2"},
		{"kong.log.serialize has the fields set before", rec["z_sees_earlier"], float64(42)},
		{"kong.ctx.shared is the request's", rec["ctx_b"], float64(7)},
		{"nil removes a field", hasKey(headers, "authorization"), false},
		{"other fields kept", headers["x-a"], "va"},
		{"unsafe globals are nil", rec["forbidden"], "nilnilfunction"},
		{"runtime error: field left out", hasKey(rec, "runtime_error"), false},
		{"endless loop: field left out", hasKey(rec, "loops"), false},
		{"function value: field left out", hasKey(rec, "function"), false},
		{"NaN: field left out", hasKey(rec, "nan"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("got %#v, want %#v", tc.got, tc.want)
			}
		})
	}
}

// TestFileLogCustomFieldsByLua: file-log applies custom_fields_by_lua
// the same way (kong/plugins/file-log/handler.lua).
func TestFileLogCustomFieldsByLua(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	h := newHarness(t)
	t.Cleanup(h.env.Close)
	h.plugin(fmt.Sprintf(`{"name":"file-log","config":{"path":%q,"custom_fields_by_lua":{"a.b":"return kong.request.get_path()","response":"return nil"}}}`, path))
	h.do("GET", "/r/x", "")
	lines := readLines(t, path, 1)
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rec["a"], map[string]any{"b": "/r/x"}) || hasKey(rec, "response") {
		t.Errorf("got %s, want a.b /r/x and no response", lines[0])
	}
}

// TestCustomFieldsKongLog: kong.log's level functions (kong/pdk/log.lua)
// write their arguments, turned to text and joined, to the node's log at
// their level, naming the plugin and the field; a level below the log's
// is not written.
func TestCustomFieldsKongLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	h := newHarness(t)
	var logs testutil.LogBuffer
	logger := zerolog.New(&logs).Level(zerolog.InfoLevel)
	h.env.Log = &logger
	t.Cleanup(h.env.Close)
	h.plugin(fmt.Sprintf(`{"name":"file-log","config":{"path":%q,"custom_fields_by_lua":{"a":"kong.log.err('bad ', 42, ' ', true) kong.log.debug('hidden') kong.log.notice('seen') return 1"}}}`, path))
	h.do("GET", "/r/x", "")
	readLines(t, path, 1)
	got := logs.String()
	for _, want := range []string{`"level":"error"`, `"kong_log":"err"`, `"field":"a"`, `"plugin":"file-log`, `"message":"bad 42 true"`, `"message":"seen"`} {
		if !strings.Contains(got, want) {
			t.Errorf("got log %s, want %s in it", got, want)
		}
	}
	if strings.Contains(got, "hidden") {
		t.Errorf("got log %s, want no debug line at info level", got)
	}
}
