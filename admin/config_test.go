package admin

import (
	"strings"
	"testing"
)

// TestConfigEndpointInDBMode: with a database Kong refuses GET and POST
// /config with 400 and this message (kong/api/routes/config.lua), whatever
// the body or ?check_hash says; nothing changes.
func TestConfigEndpointInDBMode(t *testing.T) {
	e := newTestEnv(t)
	e.mustCreate("/services", `{"name":"kept","host":"kept.test"}`)
	doc := `{"_format_version":"3.0","services":[{"name":"new","host":"new.test"}]}`
	for _, tc := range []struct{ name, method, path, body string }{
		{"GET", "GET", "/config", ""},
		{"POST JSON", "POST", "/config", doc},
		{"POST with check_hash", "POST", "/config?check_hash=1", doc},
		{"POST empty", "POST", "/config", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.json(tc.method, tc.path, tc.body)
			mustStatus(t, res, 400)
			if !strings.Contains(res.raw, `"message":"this endpoint is only available when Kong is configured to not use a database"`) {
				t.Errorf("got body %s, want Kong's DB-mode message", res.raw)
			}
		})
	}
	mustStatus(t, e.json("GET", "/services/kept", ""), 200)
	mustStatus(t, e.json("GET", "/services/new", ""), 404)
}
