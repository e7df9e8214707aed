package entity

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRequestTransformerTemplateSchema follows kong/plugins/
// request-transformer/schema.lua (3.9) check_for_value: a body or query
// value must compile as a pl.template (its load's message, chunk "TMP");
// header values are not checked there.
func TestRequestTransformerTemplateSchema(t *testing.T) {
	tests := []struct {
		name   string
		config map[string]any
		want   string // "" for valid
	}{
		{"template", map[string]any{"add": map[string]any{"querystring": []any{`q:$(headers["x-a"] or "none")`}}}, ""},
		{"text around a template", map[string]any{"add": map[string]any{"body": []any{"b:pre-$(uri_captures.user)-post"}}}, ""},
		{"bad expression", map[string]any{"add": map[string]any{"querystring": []any{"q:$(1 +)"}}},
			`value '$(1 +)' is not in supported format, error:[string \"TMP\"]:1: `},
		{"empty expression", map[string]any{"append": map[string]any{"body": []any{"b:$()"}}},
			`value '$()' is not in supported format, error:[string \"TMP\"]:1: `},
		{"header values are not checked", map[string]any{"add": map[string]any{"headers": []any{"h:$(1 +)"}}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, verr := Plugins.Validate(map[string]any{"name": "request-transformer", "config": tc.config})
			got, _ := json.Marshal(verr)
			switch {
			case tc.want == "" && verr != nil:
				t.Errorf("got %s, want it valid", got)
			case tc.want != "" && !strings.Contains(string(got), tc.want):
				t.Errorf("got %s, want %q in it", got, tc.want)
			}
		})
	}
}
