package declarative

import (
	"errors"
	"fmt"
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

// A big file is validated on every core, yet its entities come out in the
// file's order and its errors in the order of the entities they name.
func TestBigFileKeepsItsOrder(t *testing.T) {
	var b strings.Builder
	b.WriteString("_format_version: \"3.0\"\nservices:\n")
	const n = 2000
	for i := range n {
		fmt.Fprintf(&b, "- name: s%d\n  url: http://u%d.test\n  plugins:\n  - name: rate-limiting\n    config: {minute: %d}\n", i, i, i%7+1)
	}
	cfg, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	for _, kd := range cfg.Kinds {
		switch kd.Kind.Name() {
		case "services":
			for i, doc := range kd.Docs {
				if got, want := doc["name"], fmt.Sprintf("s%d", i); got != want {
					t.Fatalf("got service %d named %v, want %s", i, got, want)
				}
			}
		case "plugins":
			if len(kd.Docs) != n {
				t.Fatalf("got %d plugins, want %d", len(kd.Docs), n)
			}
		}
	}

	bad := strings.ReplaceAll(b.String(), "minute: 3}", "minute: -3}")
	_, err = Parse([]byte(bad))
	var derr *Error
	if !errors.As(err, &derr) {
		t.Fatalf("got %v, want a *declarative.Error", err)
	}
	last := -1
	for _, e := range derr.Entities {
		var i int
		if _, err := fmt.Sscanf(e.Path, "services[%d]", &i); err != nil {
			t.Fatalf("got an error at %s, want one at services[i].plugins[1]", e.Path)
		}
		if i <= last {
			t.Fatalf("got the error of services[%d] after that of services[%d], want file order", i, last+1)
		}
		last = i
	}
	if want := n / 7; len(derr.Entities) < want {
		t.Errorf("got %d errors, want %d or more", len(derr.Entities), want)
	}
}
