package admin

import (
	"crypto/sha1"
	"encoding/hex"
	"net/http"
	"testing"
)

// Consumers: kong/db/schema/entities/consumers.lua and
// kong/api/routes/consumers.lua (the custom_id filter).
func TestConsumers(t *testing.T) {
	e := newTestEnv(t)
	c := e.mustCreate("/consumers", `{"username":"alice","custom_id":"c-1"}`)
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string // JSON body; "" = not compared
	}{
		{"neither username nor custom_id", "POST", "/consumers", `{"tags":["a"]}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')","fields":{"@entity":["at least one of these fields must be non-empty: 'custom_id', 'username'"]}}`},
		{"username taken", "POST", "/consumers", `{"username":"alice"}`, 409,
			`{"code":5,"name":"unique constraint violation","message":"UNIQUE violation detected on '{username=\"alice\"}'","fields":{"username":"alice"}}`},
		{"custom_id taken", "POST", "/consumers", `{"username":"bob","custom_id":"c-1"}`, 409,
			`{"code":5,"name":"unique constraint violation","message":"UNIQUE violation detected on '{custom_id=\"c-1\"}'","fields":{"custom_id":"c-1"}}`},
		{"by custom_id", "GET", "/consumers?custom_id=c-1", "", 200, `{"data":[` + e.json("GET", "/consumers/alice", "").raw + `],"next":null}`},
		{"unknown custom_id", "GET", "/consumers?custom_id=nobody", "", 200, `{"data":[],"next":null}`},
		{"empty custom_id", "GET", "/consumers?custom_id=", "", 400, `{"message":"custom_id must be an unempty string"}`},
		{"by username", "GET", "/consumers/alice", "", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.json(tc.method, tc.path, tc.body)
			mustStatus(t, res, tc.status)
			if tc.want != "" {
				jsonEqual(t, res.raw, tc.want)
			}
		})
	}
	if c["custom_id"] != "c-1" || c["username"] != "alice" || c["updated_at"] == nil {
		t.Errorf("got consumer %v, want username, custom_id and updated_at", c)
	}
}

// Credentials: kong/plugins/*/daos.lua, each nested under its consumer
// and flat; they go with their consumer.
func TestCredentials(t *testing.T) {
	e := newTestEnv(t)
	c := e.mustCreate("/consumers", `{"username":"alice"}`)
	cid := c["id"].(string)

	t.Run("key-auth key made up when absent", func(t *testing.T) {
		k := e.mustCreate("/consumers/alice/key-auth", `{}`)
		if key, _ := k["key"].(string); len(key) != 32 {
			t.Errorf("got key %q, want 32 random characters", key)
		}
		if _, ok := k["updated_at"]; ok {
			t.Errorf("got updated_at in %v, want none (credentials have no updated_at)", k)
		}
		res := e.json("GET", "/key-auths/"+k["key"].(string), "")
		mustStatus(t, res, http.StatusOK)
		mustStatus(t, e.json("POST", "/consumers/alice/key-auth", `{"key":"`+k["key"].(string)+`"}`), http.StatusConflict)
	})
	t.Run("basic-auth password stored hashed", func(t *testing.T) {
		b := e.mustCreate("/consumers/"+cid+"/basic-auth", `{"username":"al","password":"secret"}`)
		sum := sha1.Sum([]byte("secret" + cid)) // kong/plugins/basic-auth/crypto.lua
		want := hex.EncodeToString(sum[:])
		if b["password"] != want {
			t.Errorf("got password %v, want sha1(password..consumer_id) %s", b["password"], want)
		}
		res := e.json("PATCH", "/basic-auths/al", `{"tags":["x"]}`)
		mustStatus(t, res, http.StatusOK)
		if res.body["password"] != want {
			t.Errorf("after a PATCH without password: got %v, want the stored hash kept", res.body["password"])
		}
		res = e.json("PATCH", "/basic-auths/al", `{"password":"other"}`)
		sum = sha1.Sum([]byte("other" + cid))
		if res.body["password"] != hex.EncodeToString(sum[:]) {
			t.Errorf("after a PATCH of the password: got %v, want its hash", res.body["password"])
		}
	})
	t.Run("jwt defaults", func(t *testing.T) {
		j := e.mustCreate("/consumers/alice/jwt", `{}`)
		if j["algorithm"] != "HS256" || len(j["key"].(string)) != 32 || len(j["secret"].(string)) != 32 {
			t.Errorf("got %v, want HS256 and a made-up key and secret", j)
		}
		res := e.json("POST", "/consumers/alice/jwt", `{"algorithm":"RS256"}`)
		mustStatus(t, res, http.StatusBadRequest)
		jsonEqual(t, res.raw, `{"code":2,"name":"schema violation","message":"2 schema violations (failed conditional validation given value of field 'algorithm'; rsa_public_key: required field missing)","fields":{"@entity":["failed conditional validation given value of field 'algorithm'"],"rsa_public_key":"required field missing"}}`)
	})
	t.Run("acls by group", func(t *testing.T) {
		a := e.mustCreate("/consumers/alice/acls", `{"group":"admins"}`)
		res := e.json("GET", "/consumers/alice/acls/admins", "")
		mustStatus(t, res, http.StatusOK)
		if res.body["id"] != a["id"] {
			t.Errorf("got %v, want the acl %v", res.body["id"], a["id"])
		}
		res = e.json("POST", "/consumers/alice/acls", `{"group":"admins"}`)
		mustStatus(t, res, http.StatusConflict)
		jsonEqual(t, res.raw, `{"code":5,"name":"unique constraint violation","message":"UNIQUE violation detected on '{consumer={id=\"`+cid+`\"},group=\"admins\"}'","fields":{"consumer":{"id":"`+cid+`"},"group":"admins"}}`)
		mustStatus(t, e.json("PUT", "/consumers/alice/acls/ops", `{}`), http.StatusOK)
		mustStatus(t, e.json("GET", "/consumers/alice/acls/ops", ""), http.StatusOK)
		mustStatus(t, e.json("DELETE", "/consumers/alice/acls/nobody", ""), http.StatusNotFound)
	})
	t.Run("flat lists", func(t *testing.T) {
		for path, n := range map[string]int{"/key-auths": 1, "/basic-auths": 1, "/jwts": 1, "/acls": 2, "/hmac-auths": 0, "/oauth2": 0} {
			res := e.json("GET", path, "")
			mustStatus(t, res, http.StatusOK)
			if got := len(res.body["data"].([]any)); got != n {
				t.Errorf("GET %s: got %d, want %d", path, got, n)
			}
		}
	})
	t.Run("consumer delete cascades", func(t *testing.T) {
		mustStatus(t, e.json("DELETE", "/consumers/alice", ""), http.StatusNoContent)
		for _, path := range []string{"/key-auths", "/basic-auths", "/jwts", "/acls"} {
			res := e.json("GET", path, "")
			if got := len(res.body["data"].([]any)); got != 0 {
				t.Errorf("GET %s after the consumer's delete: got %d, want 0", path, got)
			}
		}
	})
}
