package entity

import (
	"bytes"
	"encoding/json"
	"maps"
	"testing"
)

// kindExamples holds, per registered kind, inputs that between them set
// every field: the smallest valid one (defaults filled in) and a full one.
var kindExamples = map[string][]string{
	"services": {
		`{"host":"a.test"}`,
		`{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c8","created_at":1,"updated_at":2,"name":"s","retries":3,
		  "protocol":"https","host":"a.test","port":8443,"path":"/p","connect_timeout":1,"write_timeout":2,
		  "read_timeout":3,"tags":["t"],"client_certificate":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"},
		  "tls_verify":true,"tls_verify_depth":4,"ca_certificates":["6ba7b810-9dad-41d1-80b4-00c04fd430ca"],"enabled":false}`,
	},
	"routes": {
		`{"paths":["/"]}`,
		`{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c8","created_at":1,"updated_at":2,"name":"r",
		  "protocols":["https"],"https_redirect_status_code":301,"strip_path":false,"preserve_host":true,
		  "request_buffering":false,"response_buffering":false,"tags":["t"],
		  "service":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"},"methods":["GET"],"hosts":["a.test"],
		  "paths":["/a"],"headers":{"x-a":["b"]},"regex_priority":2,"path_handling":"v1","snis":["a.test"]}`,
		`{"protocols":["tcp"],"sources":[{"ip":"10.0.0.0/8","port":80}],"destinations":[{"ip":"10.0.0.1","port":81}]}`,
	},
	"upstreams": {
		`{"name":"u.test"}`,
		`{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c8","created_at":1,"updated_at":2,"name":"u","algorithm":"consistent-hashing",
		  "hash_on":"header","hash_fallback":"query_arg","hash_on_header":"x-a","hash_fallback_header":"x-b",
		  "hash_on_cookie":"c","hash_on_cookie_path":"/p","hash_on_query_arg":"q","hash_fallback_query_arg":"r",
		  "hash_on_uri_capture":"u","hash_fallback_uri_capture":"v","slots":100,"tags":["t"],"host_header":"h.test:81",
		  "client_certificate":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"},"use_srv_name":true,
		  "healthchecks":{"threshold":50,"active":{"headers":{"x-h":["1"]},"https_sni":"s.test","timeout":2.5}}}`,
	},
	"targets": {
		`{"target":"10.0.0.1","upstream":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"}}`,
		`{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c8","created_at":1700000000.123,"updated_at":1700000000.5,
		  "upstream":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"},"target":"a.test:81","weight":0,"tags":["t"]}`,
	},
	"consumers": {
		`{"username":"u"}`,
		`{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c8","created_at":1,"updated_at":2,"username":"u","custom_id":"c","tags":["t"]}`,
	},
	"plugins": {
		`{"name":"key-auth"}`,
		`{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c8","created_at":1,"updated_at":2,"name":"rate-limiting",
		  "instance_name":"rl","route":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"},
		  "service":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430ca"},"consumer":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430cb"},
		  "config":{"minute":5},"protocols":["http"],"enabled":false,"tags":["t"],"ordering":{"before":{"access":["key-auth"]}}}`,
	},
	"keyauth_credentials": {
		`{"consumer":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"},"key":"k","tags":["t"]}`,
	},
	"basicauth_credentials": {
		`{"consumer":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"},"username":"u","password":"p","tags":["t"]}`,
	},
	"hmacauth_credentials": {
		`{"consumer":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"},"username":"u"}`,
		`{"consumer":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"},"username":"u","secret":"s","tags":["t"]}`,
	},
	"jwt_secrets": {
		`{"consumer":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"},"key":"k"}`,
		`{"consumer":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"},"key":"k","secret":"s","algorithm":"HS512","tags":["t"]}`,
	},
	"acls": {
		`{"consumer":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"},"group":"g","tags":["t"]}`,
	},
	"oauth2_credentials": {
		`{"consumer":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"},"name":"app","client_id":"c"}`,
		`{"consumer":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c9"},"name":"app","client_id":"c","client_secret":"s",
		  "hash_secret":true,"redirect_uris":["https://a.test/cb"],"client_type":"public","tags":["t"]}`,
	},
}

// TestKindsRoundTripThroughTheirGoTypes: for every registered kind, what
// its schema makes of an input (defaults filled in) decodes into its Go
// type and encodes back to the same JSON, so the Go type neither drops nor
// invents a field the Admin API stores.
func TestKindsRoundTripThroughTheirGoTypes(t *testing.T) {
	all := maps.Clone(kindExamples)
	maps.Copy(all, tlsKindExamples(t))
	for _, k := range Kinds() {
		examples, ok := all[k.Name()]
		if !ok {
			t.Errorf("kind %s has no examples in kindExamples: add some", k.Name())
			continue
		}
		for i, input := range examples {
			t.Run(k.Name(), func(t *testing.T) {
				var in map[string]any
				dec := json.NewDecoder(bytes.NewReader([]byte(input)))
				dec.UseNumber()
				if err := dec.Decode(&in); err != nil {
					t.Fatalf("example %d: %v", i, err)
				}
				fillAuto(k.Schema, in)
				doc, verr := k.Schema.Validate(in)
				if verr != nil {
					t.Fatalf("example %d: %v", i, verr)
				}
				if k.Schema.OnWrite != nil {
					k.Schema.OnWrite(in, doc) // as stored
				}
				for _, f := range k.Schema.Fields {
					if f.Transient {
						delete(doc, f.Name) // never stored
					}
				}
				want, _ := json.Marshal(doc)
				v, err := k.Decode(want)
				if err != nil {
					t.Fatalf("example %d: decode into the Go type: %v", i, err)
				}
				got, _ := json.Marshal(v)
				if !sameJSON(got, want) {
					t.Errorf("example %d: got %s through the Go type, want %s", i, got, want)
				}
			})
		}
	}
}

// fillAuto sets the auto fields a stored entity always has, as the Admin
// API does before it validates.
func fillAuto(s *Schema, in map[string]any) {
	for _, f := range s.Fields {
		if _, set := in[f.Name]; set || !f.Auto {
			continue
		}
		switch {
		case f.UUID:
			in[f.Name] = "6ba7b810-9dad-41d1-80b4-00c04fd430cf"
		case f.Timestamp:
			in[f.Name] = int64(1700000000)
		}
	}
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}
