package declarative

import (
	"errors"
	"strings"
	"testing"
)

// aliasBomb is the "billion laughs" document: nine lines whose aliases
// expand to 10^9 strings.
const aliasBomb = `_format_version: "3.0"
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
services: [*h]
`

// TestBadDocumentsAreRefused: each bad document is refused with a message
// naming the entity (its place, line and name) and the field. Kong's
// messages: kong/db/schema/others/declarative_config.lua
// (uniqueness_error_msg, validate_references).
func TestBadDocumentsAreRefused(t *testing.T) {
	const v = "_format_version: \"3.0\"\n"
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"no format version", "services: []\n", []string{"_format_version: required field missing"}},
		{"old format version", "_format_version: \"1.1\"\n", []string{`"1.1" is not supported`}},
		{"unknown top-level key", v + "servicez: []\n", []string{"servicez: unknown field"}},
		{"not an array", v + "services: 5\n", []string{"services", "expected an array"}},
		{"unknown key in an entity", v + "services:\n- name: s\n  host: a.test\n  hots: x\n", []string{"line 3", `services[1] ("s")`, "field hots: unknown field"}},
		{"wrong type", v + "services:\n- name: s\n  host: a.test\n  port: eighty\n", []string{`services[1] ("s")`, "field port: expected an integer"}},
		{"wrong type nested", v + "services:\n- name: s\n  host: a.test\n  routes:\n  - name: r\n    paths: /x\n", []string{"line 6", `services[1].routes[1] ("r")`, "field paths: expected an array"}},
		{"bad plugin config", v + "plugins:\n- name: rate-limiting\n  config: {minute: -1}\n", []string{"plugins[1]", "field config.minute"}},
		{"dangling reference", v + "routes:\n- name: r\n  paths: [/]\n  service: nope\n", []string{`routes[1] ("r")`, "field service: invalid reference 'service: nope' (no such entry in 'services')"}},
		{"duplicate names", v + "services:\n- name: s\n  host: a.test\n- name: s\n  host: b.test\n", []string{"line 5", "services[2]", "uniqueness violation: 'services' entity with name set to 's' already declared"}},
		{"duplicate target in an upstream", v + "upstreams:\n- name: u\n  targets:\n  - target: 10.0.0.1:80\n  - target: 10.0.0.1:80\n", []string{"upstreams[1].targets[2]", "target set to '10.0.0.1:80' already declared"}},
		{"duplicate ids", v + "consumers:\n- id: 6ba7b810-9dad-41d1-80b4-00c04fd43001\n  username: a\n- id: 6ba7b810-9dad-41d1-80b4-00c04fd43001\n  username: b\n", []string{"consumers[2]", "primary key set to '6ba7b810-9dad-41d1-80b4-00c04fd43001' already declared"}},
		{"entity not a record", v + "services:\n- 5\n", []string{"services[1]", "expected a record"}},
		{"invalid YAML", v + "services: [\n", []string{"invalid YAML or JSON"}},
		{"invalid JSON", `{"_format_version": "3.0", "services": [}`, []string{"invalid YAML or JSON"}},
		{"duplicate key", v + "services:\n- name: a\n  name: b\n", []string{"line 4", `duplicate key "name"`}},
		{"alias bomb", aliasBomb, []string{"alias bomb"}},
		{"huge document", v + "_comment: \"" + strings.Repeat("x", MaxSize) + "\"\n", []string{"more than", "64 MiB"}},
		{"top level not a record", "- a\n", []string{"expected a record"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.doc))
			var derr *Error
			if !errors.As(err, &derr) {
				t.Fatalf("got %v, %v; want a *declarative.Error", cfg, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestAcceptsJSON: the same document in JSON parses to the same entities.
func TestAcceptsJSON(t *testing.T) {
	cfg := mustParse(t, `{"_format_version":"3.0","services":[{"name":"s","host":"a.test","routes":[{"paths":["/"]}]}]}`)
	if got := count(cfg, "routes"); got != 1 {
		t.Errorf("got %d routes, want 1", got)
	}
}
