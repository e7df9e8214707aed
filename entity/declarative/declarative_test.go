package declarative

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// docsOf is what the store would hold for cfg: each kind's documents as
// JSON, in the order given.
func docsOf(t *testing.T, cfg *Config) map[string][]json.RawMessage {
	t.Helper()
	out := map[string][]json.RawMessage{}
	for _, kd := range cfg.Kinds {
		for _, doc := range kd.Docs {
			raw, err := json.Marshal(doc)
			if err != nil {
				t.Fatalf("encode %s: %v", kd.Kind.Name(), err)
			}
			out[kd.Kind.Name()] = append(out[kd.Kind.Name()], raw)
		}
	}
	return out
}

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg
}

func count(cfg *Config, kind string) int {
	for _, kd := range cfg.Kinds {
		if kd.Kind.Name() == kind {
			return len(kd.Docs)
		}
	}
	return -1
}

// TestFixtureCoversEveryKind: the nested fixture parses, with every
// registered kind present, children given their parent and references by
// name resolved to ids.
func TestFixtureCoversEveryKind(t *testing.T) {
	cfg := mustParse(t, testutil.DeclarativeFixture(t))
	for _, k := range entity.Kinds() {
		if count(cfg, k.Name()) < 1 {
			t.Errorf("kind %s: got no entity, want the fixture to cover it", k.Name())
		}
	}
	want := map[string]int{"services": 2, "routes": 3, "plugins": 4, "snis": 2, "targets": 2, "consumers": 2}
	for kind, n := range want {
		if got := count(cfg, kind); got != n {
			t.Errorf("%s: got %d entities, want %d", kind, got, n)
		}
	}
	byName := map[string]map[string]any{}
	for _, kd := range cfg.Kinds {
		for _, d := range kd.Docs {
			if name, ok := d["name"].(string); ok {
				byName[kd.Kind.Name()+"/"+name] = d
			}
		}
	}
	svc := byName["services/other"]["id"]
	if got := refID(byName["routes/top"]["service"]); got != svc {
		t.Errorf("top-level route's service by name: got %v, want %v", got, svc)
	}
	if got := refID(byName["routes/r1"]["service"]); got != byName["services/echo"]["id"] {
		t.Errorf("nested route's service: got %v, want echo's id", got)
	}
	if got := refID(byName["snis/b.test"]["certificate"]); got != "6ba7b810-9dad-41d1-80b4-00c04fd43001" {
		t.Errorf("SNI given as a string: got certificate %v, want the parent's id", got)
	}
}

// TestExportRoundTrip: Parse(Export(x)) exports byte for byte the same,
// and the export nests as Kong's declarative format does.
func TestExportRoundTrip(t *testing.T) {
	first, err := Export(docsOf(t, mustParse(t, testutil.DeclarativeFixture(t))))
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	second, err := Export(docsOf(t, mustParse(t, string(first))))
	if err != nil {
		t.Fatalf("export again: %v", err)
	}
	if !bytes.Equal(first, second) {
		t.Fatalf("export of the import differs:\n--- first\n%s\n--- second\n%s", first, second)
	}
	var top map[string]any
	if err := json.Unmarshal(mustJSON(t, first), &top); err != nil {
		t.Fatal(err)
	}
	for _, nested := range []string{"routes", "targets", "snis", "keyauth_credentials", "keys"} {
		if _, ok := top[nested]; ok {
			t.Errorf("top level has %s, want them nested under their parent", nested)
		}
	}
	services := top["services"].([]any)
	nestedRoutes := 0
	for _, s := range services {
		if rs, ok := s.(map[string]any)["routes"].([]any); ok {
			nestedRoutes += len(rs)
		}
	}
	if nestedRoutes != 3 {
		t.Errorf("got %d routes nested under services, want 3", nestedRoutes)
	}
	if !strings.HasPrefix(string(first), "_format_version: \"3.0\"\n_transform: false\n") {
		t.Errorf("export starts %q, want the format version and _transform: false", first[:40])
	}
}

// mustJSON turns a YAML export into JSON through Parse's own decoder.
func mustJSON(t *testing.T, y []byte) []byte {
	t.Helper()
	v, err := decodeYAML(y)
	if err != nil {
		t.Fatal(err)
	}
	stripLines(v)
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
