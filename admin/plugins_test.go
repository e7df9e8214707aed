package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

// Plugins: kong/db/schema/entities/plugins.lua with the plugins' own
// schemas (kong/plugins/<name>/schema.lua) and kong/api/routes/plugins.lua.
func TestPlugins(t *testing.T) {
	e := newTestEnv(t)
	svc := e.mustCreate("/services", `{"name":"s","host":"a.test"}`)
	e.mustCreate("/services/s/routes", `{"name":"r","paths":["/"]}`)
	e.mustCreate("/consumers", `{"username":"alice"}`)

	t.Run("defaults from the plugin's schema", func(t *testing.T) {
		p := e.mustCreate("/plugins", `{"name":"key-auth"}`)
		jsonEqual(t, mustJSON(t, p["config"]), `{"key_names":["apikey"],"hide_credentials":false,"anonymous":null,
			"key_in_header":true,"key_in_query":true,"key_in_body":false,"run_on_preflight":true,"realm":null}`)
		jsonEqual(t, mustJSON(t, p["protocols"]), `["grpc","grpcs","http","https"]`)
		if p["enabled"] != true || p["service"] != nil {
			t.Errorf("got %v, want enabled and global", p)
		}
	})
	t.Run("one instance per name and scope", func(t *testing.T) {
		res := e.json("POST", "/plugins", `{"name":"key-auth"}`)
		mustStatus(t, res, http.StatusConflict)
		jsonEqual(t, res.raw, `{"code":5,"name":"unique constraint violation",
			"message":"UNIQUE violation detected on '{consumer=null,name=\"key-auth\",route=null,service=null}'",
			"fields":{"consumer":null,"name":"key-auth","route":null,"service":null}}`)
		e.mustCreate("/services/s/plugins", `{"name":"key-auth"}`)
		e.mustCreate("/routes/r/plugins", `{"name":"key-auth"}`)
		e.mustCreate("/consumers/alice/plugins", `{"name":"rate-limiting","config":{"second":1}}`)
		mustStatus(t, e.json("POST", "/services/s/plugins", `{"name":"key-auth"}`), http.StatusConflict)
	})
	t.Run("config checked against the plugin's schema", func(t *testing.T) {
		tests := []struct{ name, body, want string }{
			{"unknown plugin", `{"name":"nope"}`,
				`{"code":2,"name":"schema violation","message":"schema violation (name: plugin 'nope' not enabled; add it to the 'plugins' configuration property)","fields":{"name":"plugin 'nope' not enabled; add it to the 'plugins' configuration property"}}`},
			{"unknown config field", `{"name":"basic-auth","config":{"garbage":true}}`,
				`{"code":2,"name":"schema violation","message":"schema violation (config.garbage: unknown field)","fields":{"config":{"garbage":"unknown field"}}}`},
			{"no consumer scope", `{"name":"key-auth","consumer":{"id":"` + "6ba7b810-9dad-41d1-80b4-00c04fd430c8" + `"}}`,
				`{"code":2,"name":"schema violation","message":"schema violation (consumer: value must be null)","fields":{"consumer":"value must be null"}}`},
			{"rate-limiting needs a limit", `{"name":"rate-limiting"}`,
				`{"code":2,"name":"schema violation","message":"schema violation (at least one of these fields must be non-empty: 'config.second', 'config.minute', 'config.hour', 'config.day', 'config.month', 'config.year')","fields":{"@entity":["at least one of these fields must be non-empty: 'config.second', 'config.minute', 'config.hour', 'config.day', 'config.month', 'config.year'"]}}`},
			{"rate-limiting periods in order", `{"name":"rate-limiting","config":{"second":10,"minute":5}}`,
				`{"code":2,"name":"schema violation","message":"schema violation (config: The limit for minute(5.0) cannot be lower than the limit for second(10.0))","fields":{"config":"The limit for minute(5.0) cannot be lower than the limit for second(10.0)"}}`},
			{"redis policy needs a host", `{"name":"rate-limiting","config":{"minute":5,"policy":"redis"}}`,
				`{"code":2,"name":"schema violation","message":"2 schema violations (failed conditional validation given value of field 'config.policy'; config.redis.host: required field missing)","fields":{"@entity":["failed conditional validation given value of field 'config.policy'"],"config":{"redis":{"host":"required field missing"}}}}`},
			{"ip-restriction needs a list", `{"name":"ip-restriction","config":{}}`,
				`{"code":2,"name":"schema violation","message":"schema violation (at least one of these fields must be non-empty: 'config.allow', 'config.deny')","fields":{"@entity":["at least one of these fields must be non-empty: 'config.allow', 'config.deny'"]}}`},
			{"ip-restriction takes addresses and ranges", `{"name":"ip-restriction","config":{"allow":["10.0.0.0/33"]}}`,
				`{"code":2,"name":"schema violation","message":"schema violation (config.allow.1: invalid ip or cidr range: '10.0.0.0/33')","fields":{"config":{"allow":["invalid ip or cidr range: '10.0.0.0/33'"]}}}`},
			{"acl allow or deny", `{"name":"acl","config":{"allow":["a"],"deny":["b"]}}`,
				`{"code":2,"name":"schema violation","message":"schema violation (exactly one of these fields must be non-empty: 'config.allow', 'config.deny')","fields":{"@entity":["exactly one of these fields must be non-empty: 'config.allow', 'config.deny'"]}}`},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				res := e.json("POST", "/plugins", tc.body)
				mustStatus(t, res, http.StatusBadRequest)
				jsonEqual(t, res.raw, tc.want)
			})
		}
	})
	t.Run("schemas and enabled", func(t *testing.T) {
		res := e.json("GET", "/schemas/plugins/basic-auth", "")
		mustStatus(t, res, http.StatusOK)
		jsonEqual(t, res.raw, `{"fields":[{"consumer":{"type":"foreign","reference":"consumers","eq":null}},
			{"protocols":{"type":"set","required":true,"default":["grpc","grpcs","http","https"],"elements":{"type":"string","one_of":["grpc","grpcs","http","https"]}}},
			{"config":{"type":"record","required":true,"fields":[{"anonymous":{"type":"string"}},
				{"hide_credentials":{"type":"boolean","required":true,"default":false}},
				{"realm":{"type":"string","required":true,"default":"service"}}]}}],"entity_checks":[]}`)
		res = e.json("GET", "/schemas/plugins/nope", "")
		mustStatus(t, res, http.StatusNotFound)
		jsonEqual(t, res.raw, `{"message":"No plugin named 'nope'"}`)
		mustStatus(t, e.json("POST", "/schemas/plugins/validate", `{"name":"key-auth","config":{"anonymous":"x"}}`), http.StatusOK)
		mustStatus(t, e.json("POST", "/schemas/plugins/validate", `{"name":"key-auth","config":{"x":1}}`), http.StatusBadRequest)
		res = e.json("GET", "/plugins/enabled", "")
		mustStatus(t, res, http.StatusOK)
		if got := res.body["enabled_plugins"].([]any); len(got) < 6 {
			t.Errorf("got enabled plugins %v, want at least the six go-kong uses", got)
		}
		root := e.json("GET", "/", "")
		plugins := root.body["plugins"].(map[string]any)
		if ka, _ := plugins["available_on_server"].(map[string]any)["key-auth"].(map[string]any); ka["priority"] != 1250.0 {
			t.Errorf("got key-auth %v, want priority 1250", ka)
		}
		jsonEqual(t, mustJSON(t, plugins["enabled_in_cluster"]), `["key-auth","rate-limiting"]`)
	})
	t.Run("nested lists and cascades", func(t *testing.T) {
		for path, n := range map[string]int{"/plugins": 4, "/services/s/plugins": 1, "/routes/r/plugins": 1, "/consumers/alice/plugins": 1} {
			res := e.json("GET", path, "")
			if got := len(res.body["data"].([]any)); got != n {
				t.Errorf("GET %s: got %d plugins, want %d", path, got, n)
			}
		}
		mustStatus(t, e.json("DELETE", "/routes/r", ""), http.StatusNoContent)
		mustStatus(t, e.json("DELETE", "/services/"+svc["id"].(string), ""), http.StatusNoContent)
		mustStatus(t, e.json("DELETE", "/consumers/alice", ""), http.StatusNoContent)
		res := e.json("GET", "/plugins", "")
		if got := len(res.body["data"].([]any)); got != 1 {
			t.Errorf("after deleting the route, service and consumer: got %d plugins, want the global one", got)
		}
	})
}

// A plugin's config sent as a form (curl -d config.second=5, as Kong's
// docs show) is typed by the plugin's own schema, as Kong's
// kong/api/arguments.lua infers values from the plugin subschema: numbers,
// booleans and arrays arrive typed, not as strings.
func TestPluginConfigFromAForm(t *testing.T) {
	e := newTestEnv(t)
	res := e.do("POST", "/plugins", "application/x-www-form-urlencoded",
		"name=rate-limiting&config.second=5&config.hour=100&config.policy=local&config.hide_client_headers=true")
	mustStatus(t, res, http.StatusCreated)
	var p struct {
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal([]byte(res.raw), &p); err != nil {
		t.Fatal(err)
	}
	if p.Config["second"] != float64(5) || p.Config["hour"] != float64(100) || p.Config["hide_client_headers"] != true {
		t.Errorf("got config %v, want second 5, hour 100 and hide_client_headers true, typed", p.Config)
	}
	res = e.do("POST", "/plugins", "application/x-www-form-urlencoded", "name=key-auth&config.key_names=token")
	mustStatus(t, res, http.StatusCreated)
	if err := json.Unmarshal([]byte(res.raw), &p); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(p.Config["key_names"]); got != "[token]" {
		t.Errorf("got key_names %s, want [token]", got)
	}
}
