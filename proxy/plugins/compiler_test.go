package plugins

import (
	"encoding/json"
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
)

// validPlugin is a plugin entity as the Admin API stores doc.
func validPlugin(t *testing.T, doc string) *entity.Plugin {
	t.Helper()
	var input map[string]any
	if err := json.Unmarshal([]byte(doc), &input); err != nil {
		t.Fatal(err)
	}
	full, verr := entity.Plugins.Validate(input)
	if verr != nil {
		t.Fatalf("plugin %s: %v", doc, verr)
	}
	raw, _ := json.Marshal(full)
	var p entity.Plugin
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// A Compiler builds the hooks of a shareable plugin once per name,
// protocols and config, each instance keeping its own id and scope; a
// plugin with state of its own (rate-limiting) is built every time.
func TestCompilerSharesHooks(t *testing.T) {
	c := NewCompiler(&Env{Index: NewIndex()})
	steps := []struct {
		name, doc  string
		wantBuilds int
	}{
		{"first key-auth", `{"id": "6ba7b810-9dad-41d1-80b4-00c04fd43001", "name": "key-auth", "service": {"id": "6ba7b810-9dad-41d1-80b4-00c04fd43101"}}`, 1},
		{"same config on another service", `{"id": "6ba7b810-9dad-41d1-80b4-00c04fd43002", "name": "key-auth", "service": {"id": "6ba7b810-9dad-41d1-80b4-00c04fd43102"}}`, 1},
		{"another config", `{"id": "6ba7b810-9dad-41d1-80b4-00c04fd43003", "name": "key-auth", "config": {"key_names": ["k"]}}`, 2},
		{"other protocols", `{"id": "6ba7b810-9dad-41d1-80b4-00c04fd43004", "name": "key-auth", "protocols": ["https"]}`, 3},
		{"rate-limiting", `{"id": "6ba7b810-9dad-41d1-80b4-00c04fd43005", "name": "rate-limiting", "config": {"minute": 1}}`, 4},
		{"rate-limiting again", `{"id": "6ba7b810-9dad-41d1-80b4-00c04fd43006", "name": "rate-limiting", "config": {"minute": 1}}`, 5},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			p := validPlugin(t, s.doc)
			inst, err := c.Compile(p)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Compile(&Env{Index: NewIndex()}, p)
			if err != nil {
				t.Fatal(err)
			}
			if inst.ID != want.ID || inst.ServiceID != want.ServiceID || inst.Priority != want.Priority || inst.Name != want.Name {
				t.Errorf("got instance %s %s (service %q, priority %d), want %s %s (service %q, priority %d)",
					inst.Name, inst.ID, inst.ServiceID, inst.Priority, want.Name, want.ID, want.ServiceID, want.Priority)
			}
			for i := range inst.Hooks {
				if (inst.Hooks[i] == nil) != (want.Hooks[i] == nil) {
					t.Errorf("got hook %d set %v, want %v", i, inst.Hooks[i] != nil, want.Hooks[i] != nil)
				}
			}
			if c.builds != s.wantBuilds {
				t.Errorf("got %d builds, want %d", c.builds, s.wantBuilds)
			}
		})
	}
	t.Run("disabled", func(t *testing.T) {
		p := validPlugin(t, `{"id": "6ba7b810-9dad-41d1-80b4-00c04fd43007", "name": "key-auth", "enabled": false}`)
		if inst, err := c.Compile(p); inst != nil || err != nil {
			t.Errorf("got %v, %v; want no instance and no error", inst, err)
		}
	})
}

// appendConfigKey gives two configs the same key exactly when json.Marshal
// (the key before it) wrote them alike: equal keys share hooks.
func TestConfigKeyAgreesWithJSON(t *testing.T) {
	configs := []string{
		`null`, `{}`, `{"a": 1}`, `{"a": 1.0}`, `{"a": 1.5}`, `{"a": 1e21}`, `{"a": "1"}`, `{"a": true}`, `{"a": null}`,
		`{"a": []}`, `{"a": [1, "x", null, {"b": false}]}`, `{"a": [[]]}`, `{"b": 1, "a": 2}`, `{"a": 2, "b": 1}`,
		`{"a": "<&>"}`, `{"a": "\u00e9\t\""}`, `{"a": {"c": {"d": [1, 2]}}}`, `{"a": {"c": {"d": [2, 1]}}}`,
		`{"k": "a", "l": "b"}`, `{"k": "a,\"l\":\"b"}`,
	}
	var maps []map[string]any
	for _, c := range configs {
		var m map[string]any
		if err := json.Unmarshal([]byte(c), &m); err != nil {
			t.Fatal(err)
		}
		maps = append(maps, m)
	}
	maps = append(maps, map[string]any{"a": int64(1)}, map[string]any{"a": []string{"x"}}, map[string]any{"a": []any(nil)})
	for i, a := range maps {
		for j, b := range maps {
			ka, _ := appendConfigKey(nil, a)
			kb, _ := appendConfigKey(nil, b)
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if got, want := string(ka) == string(kb), string(ja) == string(jb); got != want {
				t.Errorf("configs %d and %d (%s, %s): got equal keys %v, want %v", i, j, ja, jb, got, want)
			}
		}
	}
}
