package entity

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestHTTPLogSchema follows kong/plugins/http-log/schema.lua and
// kong/tools/queue_schema.lua (3.9): the defaults go-kong's
// TestFillPluginDefaultsArbitraryMap expects, the queue's defaults, and
// Kong's messages for a bad endpoint or header.
func TestHTTPLogSchema(t *testing.T) {
	full, verr := Plugins.Validate(map[string]any{"name": "http-log",
		"config": map[string]any{"http_endpoint": "http://127.0.0.1:9/log", "custom_fields_by_lua": map[string]any{"foo": "return 'bar'"}}})
	if verr != nil {
		t.Fatalf("valid config: %v", verr)
	}
	raw, _ := json.Marshal(full["config"])
	for _, want := range []string{`"method":"POST"`, `"content_type":"application/json"`, `"timeout":10000`, `"keepalive":60000`,
		`"custom_fields_by_lua":{"foo":"return 'bar'"}`, `"max_batch_size":1`, `"max_coalescing_delay":1`, `"max_entries":10000`,
		`"max_retry_time":60`, `"initial_retry_delay":0.01`, `"max_retry_delay":60`, `"concurrency_limit":1`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("got config %s, want %s in it", raw, want)
		}
	}
	tests := []struct {
		name   string
		config map[string]any
		want   string
	}{
		{"no endpoint", map[string]any{}, "required field missing"},
		{"no scheme", map[string]any{"http_endpoint": "//example.com/x"}, "missing scheme in url"},
		{"no host", map[string]any{"http_endpoint": "http:///x"}, "missing host in url"},
		{"bad method", map[string]any{"http_endpoint": "http://h/", "method": "GET"}, "expected one of: POST, PUT, PATCH"},
		{"host header", map[string]any{"http_endpoint": "http://h/", "headers": map[string]any{"Host": "x"}}, "cannot contain 'Host' header"},
		{"content-type header", map[string]any{"http_endpoint": "http://h/", "headers": map[string]any{"content-type": "x"}}, "cannot contain 'Content-Type' header"},
		{"userinfo and authorization", map[string]any{"http_endpoint": "http://u:p@h/", "headers": map[string]any{"Authorization": "x"}},
			"specifying both an 'Authorization' header and user info in 'http_endpoint' is not allowed"},
		{"batch size", map[string]any{"http_endpoint": "http://h/", "queue": map[string]any{"max_batch_size": 0}}, "value should be between 1 and 1000000"},
		// kong/db/schema/typedefs.lua lua_code: each value must load in
		// the sandbox (kong/tools/sandbox.lua validate_safe).
		{"lua that does not load", map[string]any{"http_endpoint": "http://h/", "custom_fields_by_lua": map[string]any{"foo": "bar"}},
			`{"config":{"custom_fields_by_lua":{"foo":"Error parsing function: [string \"bar\"]:1: `},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, verr := Plugins.Validate(map[string]any{"name": "http-log", "config": tc.config})
			if verr == nil {
				t.Fatalf("got no error, want %q", tc.want)
			}
			got, _ := json.Marshal(verr)
			if !strings.Contains(string(got), tc.want) {
				t.Errorf("got %s, want %q in it", got, tc.want)
			}
		})
	}
}
