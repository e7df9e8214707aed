package declarative

import (
	"testing"

	"github.com/google/uuid"
)

// kongID is the id Kong 3.9 gives an entity of a declarative file without
// one, computed here by hand from its rule (generate_uuid in
// kong/db/schema/others/declarative_config.lua): v5 of the key in the
// namespace v5(fd02801f-0957-4a15-a55a-c8d9606f30b5, kind).
func kongID(kind, key string) string {
	ns := uuid.NewSHA1(uuid.MustParse("fd02801f-0957-4a15-a55a-c8d9606f30b5"), []byte(kind))
	return uuid.NewSHA1(ns, []byte(key)).String()
}

// idsDoc gives no entity an id but the one service that names its own.
const idsDoc = `_format_version: "3.0"
services:
- name: s1
  host: s1.test
  routes:
  - name: r1
    paths: [/r1]
  plugins:
  - name: key-auth
- id: 9f5c9a4e-5f0e-4b8e-8c0a-6f1b2d3c4e5f
  host: given.test
  plugins:
  - name: cors
- host: twin.test
  plugins:
  - name: cors
- host: twin.test
plugins:
- name: cors
- name: rate-limiting
  service: s1
  config: {minute: 5}
upstreams:
- name: u1
  targets:
  - target: 10.0.0.1:80
consumers:
- username: alice
  acls:
  - group: g1
  basicauth_credentials:
  - username: bob
    password: secret
  keyauth_credentials:
  - key: alice-key
`

// docWhere is the document of kind whose field has value; fatal if none.
func docWhere(t *testing.T, cfg *Config, kind, field string, value any, nth int) map[string]any {
	t.Helper()
	for _, kd := range cfg.Kinds {
		if kd.Kind.Name() != kind {
			continue
		}
		for _, doc := range kd.Docs {
			if doc[field] == value {
				if nth == 0 {
					return doc
				}
				nth--
			}
		}
	}
	t.Fatalf("no %s with %s %v", kind, field, value)
	return nil
}

// TestDerivedIDsAreKongs: entities given without an id get the id Kong
// derives for the same file (cache_key or endpoint key, nested children
// keyed by their parent's id), computed by hand from Kong's rule.
func TestDerivedIDsAreKongs(t *testing.T) {
	cfg := mustParse(t, idsDoc)
	s1 := kongID("services", "s1")
	alice := kongID("consumers", "alice")
	u1 := kongID("upstreams", "u1")
	given := "9f5c9a4e-5f0e-4b8e-8c0a-6f1b2d3c4e5f"
	for _, tc := range []struct {
		name, kind, field string
		value             any
		want              string
	}{
		{"service by name", "services", "name", "s1", s1},
		{"route by name", "routes", "name", "r1", kongID("routes", "r1")},
		{"consumer by username", "consumers", "username", "alice", alice},
		{"upstream by name", "upstreams", "name", "u1", u1},
		// kong/db/schema/entities/targets.lua: cache_key {upstream, target}.
		{"target under its upstream", "targets", "target", "10.0.0.1:80", kongID("targets", "targets:*:"+u1+":10.0.0.1:80")},
		// kong/plugins/acl/daos.lua: cache_key {consumer, group}.
		{"acl under its consumer", "acls", "group", "g1", kongID("acls", "acls:*:"+alice+":g1")},
		// kong/plugins/basic-auth/daos.lua: cache_key {username}.
		{"basic-auth by username", "basicauth_credentials", "username", "bob", kongID("basicauth_credentials", "basicauth_credentials:*:bob")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := docWhere(t, cfg, tc.kind, tc.field, tc.value, 0)["id"]; got != tc.want {
				t.Errorf("got id %v, want %s", got, tc.want)
			}
		})
	}
	// kong/db/schema/entities/plugins.lua: cache_key {name, route,
	// service, consumer}; the nested plugin's service is its parent's id,
	// a top-level one's the string the file gives, absent ones "".
	t.Run("plugins", func(t *testing.T) {
		for _, p := range pluginsOf(cfg) {
			name, svc := p["name"].(string), refID(p["service"])
			var want string
			switch {
			case name == "key-auth":
				want = kongID("plugins", "plugins:*:key-auth::"+s1+":")
			case name == "rate-limiting":
				want = kongID("plugins", "plugins:*:rate-limiting::s1:")
			case name == "cors" && svc == "":
				want = kongID("plugins", "plugins:*:cors:::")
			case name == "cors" && svc == given:
				want = kongID("plugins", "plugins:*:cors::"+given+":")
			default:
				continue // under a service Kong gives a random id
			}
			if p["id"] != want {
				t.Errorf("plugin %s of service %q: got id %v, want %s", name, svc, p["id"], want)
			}
		}
	})
}

func pluginsOf(cfg *Config) []map[string]any {
	for _, kd := range cfg.Kinds {
		if kd.Kind.Name() == "plugins" {
			return kd.Docs
		}
	}
	return nil
}

// TestDerivedIDsAreStable: where Kong would give a random id (no key, an
// auto field in the cache_key such as a key-auth key, a parent Kong has
// no id for yet), the id still comes from the file: two parses agree,
// and twins in one file differ.
func TestDerivedIDsAreStable(t *testing.T) {
	a, b := mustParse(t, idsDoc), mustParse(t, idsDoc)
	for _, kd := range a.Kinds {
		other := map[string]bool{}
		for _, kdB := range b.Kinds {
			if kdB.Kind == kd.Kind {
				for _, doc := range kdB.Docs {
					other[doc["id"].(string)] = true
				}
			}
		}
		seen := map[string]bool{}
		for _, doc := range kd.Docs {
			id := doc["id"].(string)
			if !other[id] {
				t.Errorf("%s %s: not in the second parse, want the same ids", kd.Kind.Name(), id)
			}
			if seen[id] {
				t.Errorf("%s %s: twice, want twins to differ", kd.Kind.Name(), id)
			}
			seen[id] = true
		}
	}
	twin0 := docWhere(t, a, "services", "host", "twin.test", 0)["id"]
	twin1 := docWhere(t, a, "services", "host", "twin.test", 1)["id"]
	if twin0 == twin1 {
		t.Errorf("twin services: got the same id %v twice, want two", twin0)
	}
}

// TestRepeatedKongKeyStillParses: two plugins whose services are written
// as {id: …} records share Kong's key (it leaves such values out) and so
// Kong's id; Kong refuses that file, Grapevine takes it, the first plugin
// with Kong's id and the second with one of its own.
func TestRepeatedKongKeyStillParses(t *testing.T) {
	cfg := mustParse(t, `_format_version: "3.0"
services:
- id: 6ba7b810-9dad-41d1-80b4-00c04fd43011
  host: a.test
- id: 6ba7b810-9dad-41d1-80b4-00c04fd43012
  host: b.test
plugins:
- name: cors
  service: {id: 6ba7b810-9dad-41d1-80b4-00c04fd43011}
- name: cors
  service: {id: 6ba7b810-9dad-41d1-80b4-00c04fd43012}
`)
	plugins := pluginsOf(cfg)
	if len(plugins) != 2 || plugins[0]["id"] == plugins[1]["id"] {
		t.Fatalf("got plugins %v, want two with different ids", plugins)
	}
	if want := kongID("plugins", "plugins:*:cors::"); plugins[0]["id"] != want {
		t.Errorf("first plugin: got id %v, want Kong's %s", plugins[0]["id"], want)
	}
}
