package admin

import (
	"net/http"
	"testing"
)

// TestRateLimitingRedisShorthands: Kong 3.9's rate-limiting schema.lua still
// accepts config.redis_host … redis_database as deprecated shorthands for
// config.redis.*, and kong/db/schema/init.lua (process_auto_fields,
// validate_deprecation_exclusiveness) moves them there, refusing a value
// that disagrees with the new field. GET /schemas shows them as
// shorthand_fields with deprecation.replaced_with, which decK and go-kong
// (Test_ClearUnmatchingDeprecationsSimple) read.
func TestRateLimitingRedisShorthands(t *testing.T) {
	e := newTestEnv(t)
	t.Run("old names land in config.redis", func(t *testing.T) {
		p := e.mustCreate("/plugins", `{"name":"rate-limiting","config":{"minute":5,"policy":"redis",
			"redis_host":"127.0.0.1","redis_port":6380,"redis_database":2,"redis_timeout":500}}`)
		jsonEqual(t, mustJSON(t, p["config"].(map[string]any)["redis"]), `{"host":"127.0.0.1","port":6380,"database":2,
			"timeout":500,"username":null,"password":null,"ssl":false,"ssl_verify":false,"server_name":null}`)
	})
	t.Run("mismatch with the new field", func(t *testing.T) {
		res := e.json("POST", "/routes", `{"paths":["/x"]}`)
		mustStatus(t, res, http.StatusCreated)
		res = e.json("POST", "/routes/"+res.body["id"].(string)+"/plugins", `{"name":"rate-limiting","config":{"minute":5,
			"redis_host":"a.test","redis":{"host":"b.test"}}}`)
		mustStatus(t, res, http.StatusBadRequest)
		jsonEqual(t, res.raw, `{"code":2,"name":"schema violation",
			"message":"schema violation (config.redis_host: both deprecated and new field are used but their values mismatch: redis_host = a.test vs redis.host = b.test)",
			"fields":{"config":{"redis_host":"both deprecated and new field are used but their values mismatch: redis_host = a.test vs redis.host = b.test"}}}`)
	})
	t.Run("schema lists the shorthands", func(t *testing.T) {
		res := e.json("GET", "/schemas/plugins/rate-limiting", "")
		mustStatus(t, res, http.StatusOK)
		var config map[string]any
		for _, f := range res.body["fields"].([]any) {
			if c, ok := f.(map[string]any)["config"]; ok {
				config = c.(map[string]any)
			}
		}
		shs, _ := config["shorthand_fields"].([]any)
		if len(shs) != 9 {
			t.Fatalf("got %d shorthand_fields, want 9", len(shs))
		}
		jsonEqual(t, mustJSON(t, shs[0]), `{"redis_host":{"type":"string","deprecation":{"replaced_with":[{"path":["redis","host"]}],
			"message":"rate-limiting: config.redis_host is deprecated, please use config.redis.host instead","removal_in_version":"4.0"}}}`)
	})
}
