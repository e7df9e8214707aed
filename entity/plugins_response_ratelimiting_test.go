package entity

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestResponseRateLimitingSchema follows kong/plugins/response-ratelimiting/
// schema.lua (3.9): its defaults, and Kong's messages for limits that are
// missing, empty, without a period, out of order or not positive.
func TestResponseRateLimitingSchema(t *testing.T) {
	full, verr := Plugins.Validate(map[string]any{"name": "response-ratelimiting",
		"config": map[string]any{"limits": map[string]any{"video": map[string]any{"minute": 10}}}})
	if verr != nil {
		t.Fatalf("valid config: %v", verr)
	}
	raw, _ := json.Marshal(full["config"])
	for _, want := range []string{`"header_name":"x-kong-limit"`, `"limit_by":"consumer"`, `"policy":"local"`,
		`"fault_tolerant":true`, `"block_on_first_violation":false`, `"hide_client_headers":false`,
		`"minute":10`, `"second":null`, `"redis":{`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("got config %s, want %s in it", raw, want)
		}
	}
	tests := []struct {
		name   string
		config map[string]any
		want   string
	}{
		{"no limits", map[string]any{}, `"limits":"required field missing"`},
		{"empty limits", map[string]any{"limits": map[string]any{}}, `"limits":"length must be at least 1"`},
		{"a limit without a period", map[string]any{"limits": map[string]any{"video": map[string]any{}}},
			"at least one of these fields must be non-empty: 'second', 'minute', 'hour', 'day', 'month', 'year'"},
		{"periods out of order", map[string]any{"limits": map[string]any{"video": map[string]any{"minute": 20, "hour": 10}}},
			"the limit for hour(10.0) cannot be lower than the limit for minute(20.0)"},
		{"a period at zero", map[string]any{"limits": map[string]any{"video": map[string]any{"second": 0}}}, "value must be greater than 0"},
		{"limit_by service", map[string]any{"limit_by": "service", "limits": map[string]any{"v": map[string]any{"second": 1}}},
			"expected one of: consumer, credential, ip"},
		{"redis without host", map[string]any{"policy": "redis", "limits": map[string]any{"v": map[string]any{"second": 1}}},
			`"redis":{"host":"required field missing"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, verr := Plugins.Validate(map[string]any{"name": "response-ratelimiting", "config": tc.config})
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
