package entity

import (
	"encoding/json"
	"testing"
)

// TestChecksAreData: one Check value both validates and renders into GET
// /schemas, so the two cannot drift apart.
func TestChecksAreData(t *testing.T) {
	tests := []struct {
		name    string
		check   Check
		doc     map[string]any
		wantMsg string // the flattened violation, "" = passes
		render  string
	}{
		// kong/db/schema/entities/consumers.lua: at_least_one_of.
		{"at least one of", AtLeastOneOf{"custom_id", "username"}, map[string]any{},
			"schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')",
			`{"at_least_one_of":["custom_id","username"]}`},
		{"at least one of set", AtLeastOneOf{"custom_id", "username"}, map[string]any{"username": "u"}, "",
			`{"at_least_one_of":["custom_id","username"]}`},
		{"conditional", tlsOnly("tls_verify"), map[string]any{"protocol": "http", "tls_verify": true},
			"2 schema violations (failed conditional validation given value of field 'protocol'; tls_verify: value must be null)",
			`{"conditional":{"if_field":"protocol","if_match":{"not_one_of":["https","tls"]},"then_field":"tls_verify","then_match":{"eq":null}}}`},
		{"exclusive subsets", MutuallyExclusiveSubsets{Field: "p", Subsets: [][]string{{"a"}, {"b", "c"}}},
			map[string]any{"p": []any{"a", "c"}}, "schema violation (these sets are mutually exclusive: ('a'), ('b', 'c'))",
			`{"mutually_exclusive_subsets":{"field":"p","subsets":[["a"],["b","c"]]}}`},
		{"custom is not rendered", CustomCheck(func(_ map[string]any, fe FieldErrors) { fe.Entity("no") }), nil,
			"schema violation (no)", `null`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fe := FieldErrors{}
			tc.check.run(tc.doc, fe)
			got := ""
			if err := SchemaViolation(fe); err != nil {
				got = err.Message
			}
			if got != tc.wantMsg {
				t.Errorf("got message %q, want %q", got, tc.wantMsg)
			}
			if r, _ := json.Marshal(tc.check.render()); string(r) != tc.render {
				t.Errorf("got rendering %s, want %s", r, tc.render)
			}
		})
	}
}
