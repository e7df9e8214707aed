package admin

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

// TestBadInputIsNot500: input that PostgreSQL cannot store or compare (text
// with invalid UTF-8 or NUL bytes, ids that are not canonical UUIDs, keys
// longer than an index entry) used to reach the database and come back as
// 500. Each is answered before the database sees it: with Kong's answer
// where Kong decides one (the file is named per case), else a 400 that
// names the field.
func TestBadInputIsNot500(t *testing.T) {
	e := startedEnv(t, Config{})
	e.mustCreate("/services", `{"name":"s1","host":"s.test"}`)
	long := strings.Repeat("n", 2049)
	urnToken := base64.RawURLEncoding.EncodeToString([]byte(`["urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8"]`))
	notJSONToken := base64.RawURLEncoding.EncodeToString([]byte(`{"a":`))
	utf8Key := `{"code":10,"name":"invalid unique name","message":"invalid utf-8 character sequence detected at position 1"}`
	utf8Msg := func(field string, pos string) string {
		return `{"code":2,"name":"schema violation","message":"schema violation (` + field + `: invalid utf-8 character sequence detected at position ` + pos + `)","fields":`
	}
	tests := []struct {
		name, method, path, ct, body string
		status                       int
		want                         string // a prefix of the raw answer; "" = status only
	}{
		// kong/db/schema/typedefs.lua: utf8_name and tag check the utf-8
		// first ("invalid utf-8 character sequence detected at position N").
		{"form name invalid utf-8", "POST", "/services", "form", "host=h&name=a%C0%80", 400, utf8Msg("name", "2") + `{"name":`},
		{"form tag invalid utf-8", "POST", "/services", "form", "host=h&tags=%FF", 400, utf8Msg("tags.1", "1") + `{"tags":[`},
		// Kong checks no other field's utf-8; Grapevine does, as it must not
		// store what PostgreSQL would refuse or alter.
		{"form header value invalid utf-8", "POST", "/routes", "form", "headers.x-a=%C0", 400, utf8Msg("headers.x-a.1", "1")},
		// No Kong rule: NUL bytes, which text and jsonb cannot hold.
		{"json route path NUL", "POST", "/routes", "json", `{"paths":["/a\u0000"]}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (paths.1: invalid NUL byte detected at position 3)"`},
		{"json header value NUL", "POST", "/routes", "json", `{"headers":{"x-a":["\u0000"]}}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (headers.x-a.1: invalid NUL byte detected at position 1)"`},
		// typedefs.lua utf8_name's pattern refuses the NUL byte itself.
		{"json name NUL", "POST", "/services", "json", `{"host":"h","name":"a\u0000"}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (name: invalid value 'a`},
		// kong/api/api_helpers.lua: a body lua-cjson cannot take is "Cannot
		// parse JSON body"; Go's decoder would turn invalid utf-8 into U+FFFD
		// and so change the data, so it is refused the same way.
		{"json raw invalid utf-8", "POST", "/services", "json", "{\"host\":\"h\",\"name\":\"a\xC0\"}", 400, `{"message":"Cannot parse JSON body"}`},
		// A path key is validated as the endpoint key before the lookup
		// (kong/db/dao/init.lua validate_unique_row_method): code 10, 400,
		// for every method; TestEndpointKeyNeitherNameNorUUID has the rest.
		{"put key invalid utf-8", "PUT", "/services/%C0%80", "json", `{"host":"h"}`, 400, utf8Key},
		{"get key invalid utf-8", "GET", "/services/%C0%80", "", "", 400, utf8Key},
		{"get key NUL", "GET", "/services/a%00b", "", "", 400, `{"code":10,"name":"invalid unique name","message":"invalid value 'a\u0000b'`},
		{"patch key invalid utf-8", "PATCH", "/services/%C0%80", "json", `{"retries":1}`, 400, utf8Key},
		{"delete key invalid utf-8", "DELETE", "/services/%C0%80", "", "", 400, utf8Key},
		{"nested parent invalid utf-8", "POST", "/services/%C0%80/routes", "json", `{"paths":["/"]}`, 400, utf8Key},
		{"nested list parent NUL", "GET", "/services/%00/routes", "", "", 400, `{"code":10,"name":"invalid unique name","message":"invalid value '\u0000'`},
		// kong/db/errors.lua foreign_keys_unresolved (code 13).
		{"foreign name invalid utf-8", "POST", "/routes", "form", "paths=/&service.name=%C0%80", 400,
			`{"code":13,"name":"foreign keys unresolved"`},
		// kong/api/endpoints.lua lets these bytes through its tag filter
		// pattern and PostgreSQL refuses them (500); here the filter's code
		// 11 "invalid filter syntax" (kong/db/dao/init.lua).
		{"tag filter invalid utf-8", "GET", "/services?tags=%C0%80", "", "", 400,
			`{"code":11,"name":"invalid options","message":"invalid option (tags: invalid filter syntax)"`},
		// kong/db/strategies/postgres/init.lua: invalid_offset (code 7) with
		// "bad base64 encoding" or "bad json encoding"; a token whose JSON is
		// not a row key Kong would send to PostgreSQL (500), here code 7.
		{"offset urn uuid", "GET", "/services?offset=" + urnToken, "", "", 400,
			`{"code":7,"name":"invalid offset","message":"'` + urnToken + `' is not a valid offset: bad json encoding"}`},
		{"offset raw urn uuid", "GET", "/services?offset=urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8", "", "", 400,
			`{"code":7,"name":"invalid offset","message":"'urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8' is not a valid offset: bad base64 encoding"}`},
		{"offset not json", "GET", "/services?offset=" + notJSONToken, "", "", 400,
			`{"code":7,"name":"invalid offset","message":"'` + notJSONToken + `' is not a valid offset: bad json encoding"}`},
		{"nested offset urn uuid", "GET", "/services/s1/routes?offset=" + urnToken, "", "", 400, `{"code":7,`},
		// No Kong rule (typedefs.lua sets no len_max): a name or tag longer
		// than a PostgreSQL index entry (about 2 700 bytes) cannot be stored.
		{"name too long", "POST", "/services", "json", `{"host":"h","name":"` + long + `"}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (name: length must be at most 2048 bytes)"`},
		{"route name too long", "PUT", "/routes/" + long, "json", `{"paths":["/"]}`, 400,
			`{"code":10,"name":"invalid unique name","message":"length must be at most 2048 bytes"}`},
		{"tag too long", "POST", "/services", "json", `{"host":"h","tags":["` + long + `"]}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (tags.1: length must be at most 2048 bytes)"`},
		// Wrong shapes: Kong's schema messages (kong/db/schema/init.lua).
		{"huge integer", "POST", "/services", "json", `{"host":"h","retries":1e400}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (retries: expected an integer)"`},
		{"huge port", "POST", "/services", "json", `{"host":"h","port":99999999999999999999999}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (port: expected an integer)"`},
		{"array for record", "POST", "/routes", "json", `{"paths":["/"],"service":[1]}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (service: expected a record)"`},
		// kong/db/schema/init.lua validate_field: a foreign value with a
		// valid id passes validate_primary_key(value, true), which ignores
		// other keys; the id then names no service (code 4).
		{"unknown nested field beside an id", "POST", "/routes", "json", `{"paths":["/"],"service":{"id":"6ba7b810-9dad-41d1-80b4-00c04fd430c8","x":1}}`, 400,
			`{"code":4,"name":"foreign key violation"`},
		{"braced uuid in foreign", "POST", "/routes", "json", `{"paths":["/"],"service":{"id":"{6ba7b810-9dad-41d1-80b4-00c04fd430c8}"}}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (service.id: expected a valid UUID)"`},
		{"top-level array", "POST", "/services", "json", `[{"host":"h"}]`, 400, `{"message":"Cannot parse JSON body"}`},
		{"top-level string", "POST", "/services", "json", `"h"`, 400, `{"message":"Cannot parse JSON body"}`},
		{"top-level null", "POST", "/services", "json", `null`, 400, `{"message":"Cannot parse JSON body"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := map[string]string{"form": "application/x-www-form-urlencoded", "json": "application/json"}[tc.ct]
			res := e.do(tc.method, tc.path, ct, tc.body)
			if res.status != tc.status {
				t.Fatalf("got status %d, want %d (body %s)", res.status, tc.status, res.raw)
			}
			if !strings.HasPrefix(res.raw, tc.want) {
				t.Errorf("got body %s, want it to start with %s", res.raw, tc.want)
			}
		})
	}
	t.Run("nothing was stored", func(t *testing.T) {
		for _, path := range []string{"/services", "/routes"} {
			if n := len(e.json("GET", path, "").body["data"].([]any)); n != map[string]int{"/services": 1, "/routes": 0}[path] {
				t.Errorf("%s: got %d entities, want only what the test created", path, n)
			}
		}
	})
	t.Run("a name of 2048 bytes is fine", func(t *testing.T) {
		mustStatus(t, e.json("PUT", "/services/"+long[1:], `{"host":"h","tags":["`+long[1:]+`"]}`), http.StatusOK)
	})
}
