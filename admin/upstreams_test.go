package admin

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/store"
)

// Kong 3.9.1 is the reference: kong/db/schema/entities/upstreams.lua
// (fields, healthcheck defaults, entity checks, shorthands),
// kong/db/schema/entities/targets.lua and kong/db/dao/targets.lua (target
// format, default port 8000), kong/api/routes/upstreams.lua (target
// endpoints) and spec/02-integration/04-admin_api/08-targets_routes_spec.lua
// (409 on a duplicate target).

// kongHealthchecks is Kong 3.9's default healthchecks, as its Admin API
// renders them.
const kongHealthchecks = `{"threshold":0,
 "active":{"type":"http","timeout":1,"concurrency":10,"http_path":"/","https_sni":null,"https_verify_certificate":true,"headers":null,
   "healthy":{"interval":0,"http_statuses":[200,302],"successes":0},
   "unhealthy":{"interval":0,"http_statuses":[429,404,500,501,502,503,504,505],"tcp_failures":0,"timeouts":0,"http_failures":0}},
 "passive":{"type":"http",
   "healthy":{"http_statuses":[200,201,202,203,204,205,206,207,208,226,300,301,302,303,304,305,306,307,308],"successes":0},
   "unhealthy":{"http_statuses":[429,500,503],"tcp_failures":0,"timeouts":0,"http_failures":0}}}`

func TestUpstreamDefaults(t *testing.T) {
	e := newTestEnv(t)
	res := e.json("POST", "/upstreams", `{"name":"u1.test"}`)
	mustStatus(t, res, http.StatusCreated)
	hc, _ := json.Marshal(res.body["healthchecks"])
	jsonEqual(t, string(hc), kongHealthchecks)
	want := map[string]any{"algorithm": "round-robin", "hash_on": "none", "hash_fallback": "none",
		"hash_on_cookie_path": "/", "slots": 10000.0, "use_srv_name": false, "host_header": nil,
		"client_certificate": nil, "hash_on_header": nil, "tags": nil}
	for k, v := range want {
		if got, ok := res.body[k]; !ok || got != v {
			t.Errorf("%s: got %v (present %v), want %v", k, got, ok, v)
		}
	}
}

func TestUpstreamValidation(t *testing.T) {
	e := newTestEnv(t)
	tests := []struct {
		name, body string
		want       string // a fragment of the error body
	}{
		{"ip as name", `{"name":"10.0.0.1"}`, `"name":"Invalid name ('10.0.0.1'); no ip addresses allowed"`},
		{"port in name", `{"name":"a.test:80"}`, `"name":"Invalid name ('a.test:80'); no port allowed"`},
		{"bad name", `{"name":"a b"}`, `"name":"Invalid name ('a b'); must be a valid hostname"`},
		{"header missing", `{"name":"u","hash_on":"header"}`, `"hash_on_header":"required field missing"`},
		{"cookie fallback", `{"name":"u","hash_on":"cookie","hash_on_cookie":"c","hash_fallback":"ip"}`,
			`"hash_fallback":"expected one of: none"`},
		{"fallback equals hash_on", `{"name":"u","hash_on":"ip","hash_fallback":"ip"}`,
			`"hash_fallback":"expected one of: none, consumer, header, cookie, path, query_arg, uri_capture"`},
		{"same headers", `{"name":"u","hash_on":"header","hash_on_header":"x","hash_fallback":"header","hash_fallback_header":"x"}`,
			`values of these fields must be distinct: 'hash_on_header', 'hash_fallback_header'`},
		{"slots", `{"name":"u","slots":9}`, `"slots":"value should be between 10 and 65536"`},
		{"timeout range", `{"name":"u","healthchecks":{"active":{"timeout":70000}}}`, `"timeout":"value should be between 0 and 65535"`},
		{"threshold range", `{"name":"u","healthchecks":{"threshold":101}}`, `"threshold":"value should be between 0 and 100"`},
		// go-kong's TestUpstreamWithPassiveUnHealthyInterval: passive
		// checks have no interval.
		{"passive interval", `{"name":"u","healthchecks":{"passive":{"unhealthy":{"interval":5}}}}`, `"interval":"unknown field"`},
		{"status range", `{"name":"u","healthchecks":{"active":{"healthy":{"http_statuses":[99]}}}}`, `value should be between 100 and 999`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.json("POST", "/upstreams", tc.body)
			mustStatus(t, res, http.StatusBadRequest)
			if !strings.Contains(string(res.raw), tc.want) {
				t.Errorf("got %s, want it to contain %s", res.raw, tc.want)
			}
		})
	}
}

// TestUpstreamShorthands: hash_on and algorithm are kept consistent from
// what the client sends, and a PATCH of other fields changes neither.
func TestUpstreamShorthands(t *testing.T) {
	e := newTestEnv(t)
	tests := []struct {
		name, body        string
		algorithm, hashOn string
	}{
		{"hash_on forces consistent-hashing", `{"name":"a","hash_on":"ip"}`, "consistent-hashing", "ip"},
		{"hash_on none forces round-robin", `{"name":"b","algorithm":"consistent-hashing","hash_on":"none"}`, "round-robin", "none"},
		{"least-connections drops hash_on", `{"name":"c","algorithm":"least-connections","hash_on":"ip"}`, "least-connections", "none"},
		{"latency", `{"name":"d","algorithm":"latency"}`, "latency", "none"},
		{"null hash_on is none", `{"name":"e","hash_on":null}`, "round-robin", "none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.json("POST", "/upstreams", tc.body)
			mustStatus(t, res, http.StatusCreated)
			if res.body["algorithm"] != tc.algorithm || res.body["hash_on"] != tc.hashOn {
				t.Errorf("got algorithm %v hash_on %v, want %s %s", res.body["algorithm"], res.body["hash_on"], tc.algorithm, tc.hashOn)
			}
		})
	}
	t.Run("patch keeps least-connections", func(t *testing.T) {
		res := e.json("PATCH", "/upstreams/c", `{"slots":20}`)
		mustStatus(t, res, http.StatusOK)
		if res.body["algorithm"] != "least-connections" || res.body["slots"] != 20.0 {
			t.Errorf("got %s, want least-connections with 20 slots", res.raw)
		}
	})
	t.Run("patch hash_on switches algorithm", func(t *testing.T) {
		res := e.json("PATCH", "/upstreams/c", `{"hash_on":"header","hash_on_header":"x-k"}`)
		mustStatus(t, res, http.StatusOK)
		if res.body["algorithm"] != "consistent-hashing" {
			t.Errorf("got %s, want consistent-hashing", res.raw)
		}
	})
	t.Run("patch merges healthchecks", func(t *testing.T) {
		res := e.json("PATCH", "/upstreams/a", `{"healthchecks":{"active":{"healthy":{"interval":5}}}}`)
		mustStatus(t, res, http.StatusOK)
		hc := res.body["healthchecks"].(map[string]any)["active"].(map[string]any)
		if hc["healthy"].(map[string]any)["interval"] != 5.0 || hc["timeout"] != 1.0 {
			t.Errorf("got %v, want interval 5 and the default timeout kept", hc)
		}
	})
}

func TestTargets(t *testing.T) {
	e := newTestEnv(t)
	up := e.mustCreate("/upstreams", `{"name":"up.test"}`)
	upID := up["id"].(string)

	t.Run("default port and normal form", func(t *testing.T) {
		for _, tc := range [][2]string{
			{"10.0.0.1", "10.0.0.1:8000"},
			{"010.000.0.2:81", "10.0.0.2:81"},
			{"::1", "[0000:0000:0000:0000:0000:0000:0000:0001]:8000"},
			{"[::2]:82", "[0000:0000:0000:0000:0000:0000:0000:0002]:82"},
			{"a.test", "a.test:8000"},
		} {
			in, want := tc[0], tc[1]
			res := e.json("POST", "/upstreams/up.test/targets", `{"target":"`+in+`"}`)
			mustStatus(t, res, http.StatusCreated)
			if res.body["target"] != want || res.body["weight"] != 100.0 {
				t.Errorf("%s: got %s, want target %s weight 100", in, res.raw, want)
			}
		}
	})
	t.Run("invalid target", func(t *testing.T) {
		res := e.json("POST", "/upstreams/up.test/targets", `{"target":"a b"}`)
		mustStatus(t, res, http.StatusBadRequest)
		if !strings.Contains(string(res.raw), `"target":"Invalid target ('a b'); not a valid hostname or ip address"`) {
			t.Errorf("got %s", res.raw)
		}
		res = e.json("POST", "/upstreams/up.test/targets", `{"target":"a.test","weight":65536}`)
		mustStatus(t, res, http.StatusBadRequest)
		// The address is an indexed column: a huge one is refused with a
		// 400, not a database error.
		res = e.json("POST", "/upstreams/up.test/targets", `{"target":"`+strings.Repeat("a", 3000)+`"}`)
		mustStatus(t, res, http.StatusBadRequest)
	})
	t.Run("duplicate target is 409", func(t *testing.T) {
		res := e.json("POST", "/upstreams/"+upID+"/targets", `{"target":"10.0.0.1:8000","weight":5}`)
		mustStatus(t, res, http.StatusConflict)
		want := `UNIQUE violation detected on '{target=\"10.0.0.1:8000\",upstream={id=\"` + upID + `\"}}'`
		if !strings.Contains(string(res.raw), want) {
			t.Errorf("got %s, want message %s", res.raw, want)
		}
	})
	t.Run("same target under another upstream", func(t *testing.T) {
		e.mustCreate("/upstreams", `{"name":"other.test"}`)
		res := e.json("POST", "/upstreams/other.test/targets", `{"target":"10.0.0.1"}`)
		mustStatus(t, res, http.StatusCreated)
	})
	t.Run("by id or by address", func(t *testing.T) {
		res := e.json("GET", "/upstreams/up.test/targets/a.test:8000", "")
		mustStatus(t, res, http.StatusOK)
		id := res.body["id"].(string)
		res = e.json("PUT", "/upstreams/"+upID+"/targets/"+id, `{"weight":0}`)
		mustStatus(t, res, http.StatusOK)
		if res.body["weight"] != 0.0 || res.body["target"] != "a.test:8000" {
			t.Errorf("PUT: got %s, want weight 0 and the target kept", res.raw)
		}
		res = e.json("PATCH", "/upstreams/up.test/targets/a.test:8000", `{"weight":7}`)
		mustStatus(t, res, http.StatusOK)
		if res.body["weight"] != 7.0 || res.body["id"] != id {
			t.Errorf("PATCH: got %s, want weight 7", res.raw)
		}
		// An address is matched as stored: without its port it names nothing.
		mustStatus(t, e.json("GET", "/upstreams/up.test/targets/a.test", ""), http.StatusNotFound)
		// A target of another upstream is not found under this one.
		other := e.json("GET", "/upstreams/other.test/targets/10.0.0.1:8000", "")
		mustStatus(t, other, http.StatusOK)
		mustStatus(t, e.json("GET", "/upstreams/up.test/targets/"+other.body["id"].(string), ""), http.StatusNotFound)
	})
	t.Run("put and delete of an absent target are 404", func(t *testing.T) {
		for _, m := range []string{"PUT", "PATCH", "DELETE", "GET"} {
			mustStatus(t, e.json(m, "/upstreams/up.test/targets/0fa49cd2-ee93-492a-bedf-b80778d539ae", `{"weight":1}`), http.StatusNotFound)
			mustStatus(t, e.json(m, "/upstreams/nope.test/targets/10.0.0.1:8000", `{"weight":1}`), http.StatusNotFound)
		}
	})
	t.Run("no top-level targets endpoints", func(t *testing.T) {
		for _, p := range []string{"/targets", "/targets/10.0.0.1:8000", "/upstreams/up.test/health"} {
			mustStatus(t, e.json("GET", p, ""), http.StatusNotFound)
		}
	})
	t.Run("list newest first with numeric offsets", func(t *testing.T) {
		res := e.json("GET", "/upstreams/up.test/targets?size=2", "")
		mustStatus(t, res, http.StatusOK)
		data := res.body["data"].([]any)
		if len(data) != 2 || res.body["offset"] != "2" || res.body["next"] != "/upstreams/up.test/targets?offset=2" {
			t.Fatalf("got %s, want 2 targets and offset 2", res.raw)
		}
		res2 := e.json("GET", "/upstreams/up.test/targets?offset=2&size=10", "")
		if n := len(res2.body["data"].([]any)); n != 3 || res2.body["next"] != nil {
			t.Errorf("got %d targets, next %v, want the last 3 and no next", n, res2.body["next"])
		}
		all := append(data, res2.body["data"].([]any)...)
		for i := 1; i < len(all); i++ {
			prev, cur := all[i-1].(map[string]any), all[i].(map[string]any)
			if prev["created_at"].(float64) < cur["created_at"].(float64) {
				t.Errorf("got %v before %v, want newest first", prev["target"], cur["target"])
			}
		}
		mustStatus(t, e.json("GET", "/upstreams/up.test/targets?offset=x", ""), http.StatusBadRequest)
	})
	t.Run("all", func(t *testing.T) {
		res := e.json("GET", "/upstreams/up.test/targets/all?size=4", "")
		mustStatus(t, res, http.StatusOK)
		if n := len(res.body["data"].([]any)); n != 4 || !strings.HasPrefix(res.body["next"].(string), "/upstreams/up.test/targets/all?offset=") {
			t.Fatalf("got %s, want 4 targets and a next page", res.raw)
		}
		res = e.json("GET", res.body["next"].(string), "")
		if n := len(res.body["data"].([]any)); n != 1 {
			t.Errorf("got %d targets on page 2, want 1", n)
		}
	})
	t.Run("created_at has milliseconds", func(t *testing.T) {
		res := e.json("GET", "/upstreams/up.test/targets/a.test:8000", "")
		if _, ok := res.body["created_at"].(float64); !ok {
			t.Errorf("got created_at %v, want a number", res.body["created_at"])
		}
	})
	t.Run("deleting the upstream deletes its targets", func(t *testing.T) {
		mustStatus(t, e.json("DELETE", "/upstreams/up.test", ""), http.StatusNoContent)
		rows, err := e.st.All(t.Context(), store.TableOf(entity.MustKind("targets")))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Errorf("got %d targets left, want 1 (other.test's)", len(rows))
		}
	})
}
