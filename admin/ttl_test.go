package admin

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// Kong's ttl option on key-auth credentials (schema ttl = true in
// kong/plugins/key-auth/daos.lua; options in kong/api/endpoints.lua
// extract_options and kong/db/dao/init.lua validate_options_value; the
// seconds left on reads in kong/db/strategies/postgres/init.lua), as
// spec/03-plugins/09-key-auth/01-api_spec.lua checks it.
func TestKeyAuthTTL(t *testing.T) {
	e := newTestEnv(t)
	e.mustCreate("/consumers", `{"username":"bob"}`)

	t.Run("create answers the seconds left", func(t *testing.T) {
		k := e.mustCreate("/consumers/bob/key-auth", `{"key":"k-ttl","ttl":10}`)
		// go-kong's TestKeyAuthCreateWithTTL: less than the ttl given.
		if ttl, ok := k["ttl"].(float64); !ok || ttl >= 10 || ttl < 8 {
			t.Errorf("got ttl %v, want 8 or 9 (seconds left of 10)", k["ttl"])
		}
		res := e.json("GET", "/key-auths/k-ttl", "")
		mustStatus(t, res, http.StatusOK)
		if ttl, ok := res.body["ttl"].(float64); !ok || ttl >= 10 {
			t.Errorf("GET: got ttl %v, want the seconds left", res.body["ttl"])
		}
		list := e.json("GET", "/consumers/bob/key-auth", "")
		for _, c := range list.body["data"].([]any) {
			if c.(map[string]any)["ttl"] == nil {
				t.Errorf("list: got %v, want a ttl", c)
			}
		}
	})
	t.Run("without ttl it is null", func(t *testing.T) {
		k := e.mustCreate("/consumers/bob/key-auth", `{"key":"k-forever"}`)
		if v, ok := k["ttl"]; !ok || v != nil {
			t.Errorf("got ttl %v (present %v), want null", v, ok)
		}
	})
	t.Run("a PATCH without ttl keeps it, with ttl 0 clears it", func(t *testing.T) {
		res := e.json("PATCH", "/key-auths/k-ttl", `{"tags":["a"]}`)
		mustStatus(t, res, http.StatusOK)
		if ttl, ok := res.body["ttl"].(float64); !ok || ttl >= 10 {
			t.Errorf("got ttl %v, want the seconds left kept", res.body["ttl"])
		}
		res = e.json("PATCH", "/key-auths/k-ttl", `{"ttl":0}`)
		mustStatus(t, res, http.StatusOK)
		if v, ok := res.body["ttl"]; !ok || v != nil {
			t.Errorf("got ttl %v, want null", v)
		}
		res = e.json("PATCH", "/key-auths/k-ttl", `{"ttl":100}`)
		if ttl, ok := res.body["ttl"].(float64); !ok || ttl < 98 || ttl >= 100 {
			t.Errorf("got ttl %v, want about 100 seconds from now", res.body["ttl"])
		}
	})
	t.Run("a form's ttl", func(t *testing.T) {
		res := e.do("POST", "/consumers/bob/key-auth", "application/x-www-form-urlencoded", "key=k-form&ttl=50")
		mustStatus(t, res, http.StatusCreated)
		if ttl, ok := res.body["ttl"].(float64); !ok || ttl >= 50 {
			t.Errorf("got ttl %v, want the seconds left of 50", res.body["ttl"])
		}
	})
	bad := []struct{ name, body string }{
		{"negative", `{"ttl":-1}`},
		{"fraction", `{"ttl":1.5}`},
		{"too long", `{"ttl":100000001}`},
		{"a string", `{"ttl":"soon"}`},
	}
	for _, tc := range bad {
		t.Run("bad ttl: "+tc.name, func(t *testing.T) {
			res := e.json("POST", "/consumers/bob/key-auth", tc.body)
			mustStatus(t, res, http.StatusBadRequest)
			jsonEqual(t, res.raw, `{"code":11,"name":"invalid options","message":"invalid option (ttl: must be an integer between 0 and 100000000)","options":{"ttl":"must be an integer between 0 and 100000000"}}`)
		})
	}
	t.Run("kinds without ttl refuse it as an unknown field", func(t *testing.T) {
		res := e.json("POST", "/consumers", `{"username":"x","ttl":10}`)
		mustStatus(t, res, http.StatusBadRequest)
		jsonEqual(t, res.raw, `{"code":2,"name":"schema violation","message":"schema violation (ttl: unknown field)","fields":{"ttl":"unknown field"}}`)
	})
	t.Run("an expired key is gone from every read, and its key free again", func(t *testing.T) {
		k := e.mustCreate("/consumers/bob/key-auth", `{"key":"k-short","ttl":1}`)
		id := k["id"].(string)
		testutil.Eventually(t, 5*time.Second, func() error {
			if res := e.json("GET", "/consumers/bob/key-auth/"+id, ""); res.status != http.StatusNotFound {
				return fmt.Errorf("got status %d, want 404 once expired", res.status)
			}
			return nil
		})
		mustStatus(t, e.json("GET", "/key-auths/k-short", ""), http.StatusNotFound)
		mustStatus(t, e.json("PATCH", "/key-auths/"+id, `{"tags":["x"]}`), http.StatusNotFound)
		for _, c := range e.json("GET", "/key-auths", "").body["data"].([]any) {
			if c.(map[string]any)["id"] == id {
				t.Errorf("list: got the expired key %v", c)
			}
		}
		// Kong answers 409 here until its cleanup timer has run.
		e.mustCreate("/consumers/bob/key-auth", `{"key":"k-short"}`)
	})
}
