package admin

import (
	"net/http"
	"strings"
	"testing"
)

// TestForeignEntityEndpoint: /routes/{r}/service answers as Kong 3.9's
// generated foreign-entity endpoint (kong/api/endpoints.lua,
// put/get/patch/delete_entity_endpoint with is_foreign_entity_endpoint).
// PUT on a route without a service upserts a service under a fresh id and
// links the route to it; PATCH, GET and DELETE there answer 404; DELETE of
// a linked service through the route is 405.
func TestForeignEntityEndpoint(t *testing.T) {
	e := newTestEnv(t)
	s1 := e.mustCreate("/services", `{"name":"s1","host":"one.test"}`)
	e.mustCreate("/routes", `{"name":"linked","paths":["/l"],"service":{"name":"s1"}}`)
	e.mustCreate("/routes", `{"name":"bare","paths":["/b"]}`)
	e.mustCreate("/routes", `{"name":"bare2","paths":["/b2"]}`)

	tests := []struct {
		name, method, path, body string
		status                   int
		check                    func(t *testing.T, res response)
	}{
		{name: "PUT with a taken name links nothing", method: "PUT", path: "/routes/bare/service",
			body: `{"name":"s1","host":"dup.test"}`, status: 409, check: func(t *testing.T, res response) {
				if got := serviceID(e.json("GET", "/routes/bare", "").body); got != nil {
					t.Errorf("got route's service %v, want none", got)
				}
			}},
		{name: "PUT on a route without a service creates and links one", method: "PUT", path: "/routes/bare/service",
			body: `{"name":"made","host":"made.test"}`, status: 200, check: func(t *testing.T, res response) {
				// The service's create and the route's update are both
				// made live on this node, in that order.
				changes := e.applier.snapshot()
				if len(changes) < 2 || changes[len(changes)-2].Table != "services" || changes[len(changes)-1].Table != "routes" {
					t.Errorf("got applied changes %+v, want a services change then a routes change last", changes)
				}
				if res.body["host"] != "made.test" || res.body["name"] != "made" {
					t.Fatalf("got %s, want the new service", res.raw)
				}
				route := e.json("GET", "/routes/bare", "").body
				if got := serviceID(route); got != res.body["id"] {
					t.Errorf("got route's service %v, want %v", got, res.body["id"])
				}
				mustStatus(t, e.json("GET", "/services/made", ""), http.StatusOK)
				mustStatus(t, e.json("GET", "/routes/bare/service", ""), http.StatusOK)
			}},
		{name: "PUT on a linked route replaces its service", method: "PUT", path: "/routes/linked/service",
			body: `{"host":"new.test"}`, status: 200, check: func(t *testing.T, res response) {
				if res.body["id"] != s1["id"] || res.body["host"] != "new.test" {
					t.Errorf("got %s, want service %v with host new.test", res.raw, s1["id"])
				}
			}},
		{name: "PUT with a bad body links nothing", method: "PUT", path: "/routes/bare2/service",
			body: `{"host":1}`, status: 400, check: func(t *testing.T, res response) {
				if got := serviceID(e.json("GET", "/routes/bare2", "").body); got != nil {
					t.Errorf("got route's service %v, want none", got)
				}
				if n := len(e.json("GET", "/services", "").body["data"].([]any)); n != 2 {
					t.Errorf("got %d services, want 2", n)
				}
			}},
		{name: "PUT on an absent route", method: "PUT", path: "/routes/ghost/service", body: `{"host":"g.test"}`, status: 404},
		{name: "PATCH on a route without a service", method: "PATCH", path: "/routes/bare2/service", body: `{"retries":1}`, status: 404},
		{name: "GET on a route without a service", method: "GET", path: "/routes/bare2/service", status: 404},
		{name: "DELETE on a route without a service", method: "DELETE", path: "/routes/bare2/service", status: 404},
		{name: "DELETE on a linked route", method: "DELETE", path: "/routes/linked/service", status: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.json(tc.method, tc.path, tc.body)
			mustStatus(t, res, tc.status)
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}
}

func serviceID(route map[string]any) any {
	ref, _ := route["service"].(map[string]any)
	if ref == nil {
		return nil
	}
	return ref["id"]
}

// TestNestedDeleteNotFound: kong/api/endpoints.lua delete_entity_endpoint
// for /services/{s}/routes/{r} answers 404 when the service, the route or
// the link between them is missing, and 204 only after deleting; the plain
// /services/{s} DELETE stays 204 for an absent entity.
func TestNestedDeleteNotFound(t *testing.T) {
	e := newTestEnv(t)
	e.mustCreate("/services", `{"name":"s1","host":"one.test"}`)
	e.mustCreate("/services", `{"name":"s2","host":"two.test"}`)
	e.mustCreate("/services/s1/routes", `{"name":"r1","paths":["/one"]}`)
	tests := []struct {
		name, path string
		status     int
	}{
		{"absent child by name", "/services/s1/routes/ghost", 404},
		{"absent child by id", "/services/s1/routes/6ba7b810-9dad-41d1-80b4-00c04fd430c8", 404},
		{"absent parent", "/services/ghost/routes/r1", 404},
		{"child of another parent", "/services/s2/routes/r1", 404},
		{"absent top-level entity", "/services/ghost", 204},
		{"present child", "/services/s1/routes/r1", 204},
		{"child just deleted", "/services/s1/routes/r1", 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustStatus(t, e.json("DELETE", tc.path, ""), tc.status)
		})
	}
}

// TestNestedPutMovesChild: kong/api/endpoints.lua put_entity_endpoint for
// /services/{s}/routes/{r} sets the route's service to the path's and
// upserts the route without looking at its old service, so PUT moves a
// route of another service (PATCH, which checks, answers 404).
func TestNestedPutMovesChild(t *testing.T) {
	e := newTestEnv(t)
	e.mustCreate("/services", `{"name":"s1","host":"one.test"}`)
	s2 := e.mustCreate("/services", `{"name":"s2","host":"two.test"}`)
	e.mustCreate("/services/s1/routes", `{"name":"r1","paths":["/one"]}`)
	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{"PATCH of another service's route", "PATCH", "/services/s2/routes/r1", `{"paths":["/p"]}`, 404},
		{"PUT of another service's route", "PUT", "/services/s2/routes/r1", `{"paths":["/moved"]}`, 200},
		{"GET under the new service", "GET", "/services/s2/routes/r1", "", 200},
		{"GET under the old service", "GET", "/services/s1/routes/r1", "", 404},
		{"PUT under an absent service", "PUT", "/services/ghost/routes/r1", `{"paths":["/x"]}`, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.json(tc.method, tc.path, tc.body)
			mustStatus(t, res, tc.status)
			if tc.method == "PUT" && tc.status == 200 && serviceID(res.body) != s2["id"] {
				t.Errorf("got service %v, want %v", serviceID(res.body), s2["id"])
			}
		})
	}
}

// TestEndpointKeyNeitherNameNorUUID: a path key that is not a UUID is
// looked up by the endpoint key (kong/api/endpoints.lua query_entity →
// select_by_name and friends), whose value is validated first
// (kong/db/dao/init.lua validate_unique_row_method): a value the name's
// typedef refuses is code 10 "invalid unique name", 400, whatever the
// method, also as the parent of a nested path. /tags/{tag} does the same
// with "invalid unique tag" (kong/db/dao/tags.lua page_by_tag).
func TestEndpointKeyNeitherNameNorUUID(t *testing.T) {
	e := startedEnv(t, Config{})
	e.mustCreate("/services", `{"name":"s1","host":"one.test"}`)
	e.mustCreate("/services/s1/routes", `{"name":"r1","paths":["/one"]}`)
	space := `{"code":10,"name":"invalid unique name","message":"invalid value 'a b': the only accepted ascii characters are alphanumerics or ., -, _, and ~"}`
	nul := `{"code":10,"name":"invalid unique name","message":"invalid value 'a\u0000b': the only accepted ascii characters are alphanumerics or ., -, _, and ~"}`
	utf8 := `{"code":10,"name":"invalid unique name","message":"invalid utf-8 character sequence detected at position 1"}`
	tests := []struct {
		name, method, path, body string
		want                     string
	}{
		{"GET space", "GET", "/services/a%20b", "", space},
		{"GET NUL", "GET", "/services/a%00b", "", nul},
		{"GET invalid utf-8", "GET", "/services/%C0%80", "", utf8},
		{"PUT space", "PUT", "/services/a%20b", `{"host":"h.test"}`, space},
		{"PUT invalid utf-8", "PUT", "/services/%C0%80", `{"host":"h.test"}`, utf8},
		{"PATCH NUL", "PATCH", "/services/a%00b", `{"retries":1}`, nul},
		{"DELETE space", "DELETE", "/services/a%20b", "", space},
		{"DELETE NUL", "DELETE", "/services/a%00b", "", nul},
		{"DELETE route space", "DELETE", "/routes/a%20b", "", space},
		{"nested list parent space", "GET", "/services/a%20b/routes", "", space},
		{"nested post parent NUL", "POST", "/services/a%00b/routes", `{"paths":["/x"]}`, nul},
		{"nested child space", "GET", "/services/s1/routes/a%20b", "", space},
		{"nested delete child space", "DELETE", "/services/s1/routes/a%20b", "", space},
		{"foreign endpoint route space", "GET", "/routes/a%20b/service", "", space},
		{"foreign endpoint PUT route NUL", "PUT", "/routes/a%00b/service", `{"host":"h.test"}`, nul},
		{"tag with a comma", "GET", "/tags/a,b", "",
			"{\"code\":10,\"name\":\"invalid unique tag\",\"message\":\"invalid tag 'a,b': expected printable ascii (except `,` and `/`) or valid utf-8 sequences\"}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.json(tc.method, tc.path, tc.body)
			mustStatus(t, res, http.StatusBadRequest)
			jsonEqual(t, res.raw, tc.want)
		})
	}
	t.Run("nothing was written", func(t *testing.T) {
		if n := len(e.json("GET", "/services", "").body["data"].([]any)); n != 1 {
			t.Errorf("got %d services, want 1", n)
		}
		if n := len(e.json("GET", "/routes", "").body["data"].([]any)); n != 1 {
			t.Errorf("got %d routes, want 1", n)
		}
	})
}

// TestJSONStringNotUTF8: lua-cjson, which decodes Kong's JSON bodies,
// refuses a \u escape that is half a surrogate pair
// (json_append_unicode_escape returns an error), so Kong answers "Cannot
// parse JSON body" (kong/api/api_helpers.lua). Go's decoder would store
// U+FFFD instead, changing the data.
func TestJSONStringNotUTF8(t *testing.T) {
	e := newTestEnv(t)
	malformed := `{"message":"Cannot parse JSON body"}`
	tests := []struct {
		name, body string
		status     int
		want       string // "" = status only
	}{
		{"lone high surrogate", `{"host":"h.test","tags":["\ud800"]}`, 400, malformed},
		{"lone low surrogate", `{"host":"h.test","tags":["\uDC00"]}`, 400, malformed},
		{"high surrogate then a letter", `{"host":"h.test","tags":["\ud800\u0041"]}`, 400, malformed},
		{"high surrogate at the end of the string", `{"host":"h.test","tags":["a\ud83d"]}`, 400, malformed},
		{"lone surrogate in a key", `{"host":"h.test","\ud800":1}`, 400, malformed},
		{"raw invalid utf-8", "{\"host\":\"h.test\",\"tags\":[\"\xff\"]}", 400, malformed},
		{"escaped backslash before u is no escape", `{"host":"h.test","tags":["\\ud800"]}`, 201, ""},
		{"valid surrogate pair", `{"host":"h.test","tags":["\ud83d\ude00"]}`, 201, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.json("POST", "/services", tc.body)
			mustStatus(t, res, tc.status)
			if tc.want != "" {
				jsonEqual(t, res.raw, tc.want)
			}
		})
	}
	t.Run("the pair is stored as one character", func(t *testing.T) {
		res := e.json("GET", "/services?tags=%F0%9F%98%80", "")
		if n := len(res.body["data"].([]any)); n != 1 {
			t.Errorf("got %d services tagged U+1F600, want 1 (%s)", n, res.raw)
		}
	})
}

// TestTagFilter: kong/api/endpoints.lua extract_options turns ?tags= into
// DAO options that kong/db/dao/init.lua validate_options_value checks, so
// a bad filter is code 11 "invalid options" with the option named. On a
// nested collection the options are still checked but the filter is not
// applied: the postgres strategy's page (kong/db/strategies/postgres/
// init.lua) picks the page_for_<parent> statement over page_by_tags.
// /tags has no tags field, so there ?tags is not an option at all.
func TestTagFilter(t *testing.T) {
	e := newTestEnv(t)
	e.mustCreate("/services", `{"name":"s1","host":"one.test","tags":["t"]}`)
	e.mustCreate("/services/s1/routes", `{"name":"r1","paths":["/one"],"tags":["a"]}`)
	e.mustCreate("/services/s1/routes", `{"name":"r2","paths":["/two"]}`)
	opt := func(msg string) string {
		return `{"code":11,"name":"invalid options","message":"invalid option (tags: ` + msg + `)","options":{"tags":"` + msg + `"}}`
	}
	tests := []struct {
		name, path string
		status     int
		want       string // the whole body for errors
		wantData   int    // entries for 200
	}{
		{"mixed separators", "/services?tags=a,b/c", 400, opt("invalid filter syntax"), 0},
		{"empty", "/services?tags=", 400, opt("cannot be null"), 0},
		{"control byte", "/routes?tags=%01", 400, opt("invalid filter syntax"), 0},
		{"empty element", "/services?tags=a,,b", 400, opt("invalid filter syntax"), 0},
		{"too many", "/services?tags=a/b/c/d/e/f", 400, opt("cannot query more than 5 tags"), 0},
		{"nested filter ignored", "/services/s1/routes?tags=nomatch", 200, "", 2},
		{"nested filter ignored, and", "/services/s1/routes?tags=a,b", 200, "", 2},
		{"nested bad filter still refused", "/services/s1/routes?tags=a,b/c", 400, opt("invalid filter syntax"), 0},
		{"nested absent parent before the filter", "/services/ghost/routes?tags=a,b/c", 404, `{"message":"Not found"}`, 0},
		{"top-level filter applied", "/routes?tags=a", 200, "", 1},
		{"tags listing ignores ?tags", "/tags?tags=a,b/c", 200, "", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.json("GET", tc.path, "")
			mustStatus(t, res, tc.status)
			if tc.status != http.StatusOK {
				jsonEqual(t, res.raw, tc.want)
				return
			}
			if n := len(res.body["data"].([]any)); n != tc.wantData {
				t.Errorf("got %d entries, want %d (%s)", n, tc.wantData, strings.TrimSpace(res.raw))
			}
		})
	}
}

// GET /schemas/tags serves Kong's tags schema (kong/db/schema/entities/tags.lua),
// which go-kong's TestSchemaService reads with the entity schemas.
func TestTagsSchema(t *testing.T) {
	e := newTestEnv(t)
	res := e.json("GET", "/schemas/tags", "")
	if res.status != 200 {
		t.Fatalf("got %d %s, want 200", res.status, res.raw)
	}
	fields, _ := res.body["fields"].([]any)
	var names []string
	for _, f := range fields {
		for name := range f.(map[string]any) {
			names = append(names, name)
		}
	}
	if strings.Join(names, ",") != "tag,entity_name,entity_id" {
		t.Errorf("got fields %v, want tag, entity_name, entity_id", names)
	}
}
