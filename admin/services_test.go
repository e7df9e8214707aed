package admin

import (
	"net/http"
	"strings"
	"testing"
)

func TestServiceCRUD(t *testing.T) {
	e := newTestEnv(t)
	created := e.mustCreate("/services", `{"name":"svc1","url":"https://example.com:8443/api"}`)
	id := created["id"].(string)

	t.Run("create renders every field", func(t *testing.T) {
		for _, k := range []string{"id", "created_at", "updated_at", "name", "retries", "protocol", "host", "port", "path",
			"connect_timeout", "write_timeout", "read_timeout", "tags", "client_certificate", "tls_verify",
			"tls_verify_depth", "ca_certificates", "enabled"} {
			if _, ok := created[k]; !ok {
				t.Errorf("got no %q key, want it present", k)
			}
		}
		want := map[string]any{"protocol": "https", "host": "example.com", "port": 8443.0, "path": "/api",
			"retries": 5.0, "connect_timeout": 60000.0, "enabled": true, "tags": nil}
		for k, v := range want {
			if created[k] != v {
				t.Errorf("%s: got %v, want %v", k, created[k], v)
			}
		}
	})
	t.Run("get by id and by name", func(t *testing.T) {
		for _, ref := range []string{id, "svc1", "svc1/"} {
			res := e.json("GET", "/services/"+ref, "")
			mustStatus(t, res, http.StatusOK)
			if res.body["id"] != id {
				t.Errorf("GET %s: got id %v, want %s", ref, res.body["id"], id)
			}
		}
	})
	t.Run("headers", func(t *testing.T) {
		res := e.json("GET", "/services/"+id, "")
		for k, want := range map[string]string{"Content-Type": "application/json; charset=utf-8",
			"Server": "grapevine/3.9.1", "Access-Control-Allow-Origin": "*"} {
			if got := res.header.Get(k); got != want {
				t.Errorf("%s: got %q, want %q", k, got, want)
			}
		}
		if res.header.Get("X-Kong-Admin-Latency") == "" {
			t.Errorf("got no X-Kong-Admin-Latency header, want one")
		}
	})
	t.Run("patch merges", func(t *testing.T) {
		res := e.json("PATCH", "/services/svc1", `{"retries":3,"tags":["a"]}`)
		mustStatus(t, res, http.StatusOK)
		if res.body["retries"] != 3.0 || res.body["host"] != "example.com" || res.body["created_at"] != created["created_at"] {
			t.Errorf("got %s, want retries 3 and the rest unchanged", res.raw)
		}
	})
	t.Run("put replaces", func(t *testing.T) {
		res := e.json("PUT", "/services/"+id, `{"name":"svc1","host":"other.test"}`)
		mustStatus(t, res, http.StatusOK)
		if res.body["retries"] != 5.0 || res.body["protocol"] != "http" || res.body["port"] != 80.0 || res.body["tags"] != nil {
			t.Errorf("got %s, want defaults restored", res.raw)
		}
	})
	t.Run("put creates by name", func(t *testing.T) {
		res := e.json("PUT", "/services/byname", `{"host":"h.test"}`)
		mustStatus(t, res, http.StatusOK)
		if res.body["name"] != "byname" {
			t.Errorf("got name %v, want byname", res.body["name"])
		}
	})
	t.Run("put creates by id", func(t *testing.T) {
		res := e.json("PUT", "/services/5f2f1b8a-7d57-4a9d-9c1a-2b0a7c1c0e11", `{"host":"h.test"}`)
		mustStatus(t, res, http.StatusOK)
		if res.body["id"] != "5f2f1b8a-7d57-4a9d-9c1a-2b0a7c1c0e11" {
			t.Errorf("got id %v, want the path's", res.body["id"])
		}
	})
	t.Run("patch absent is 404", func(t *testing.T) {
		res := e.json("PATCH", "/services/nope", `{"retries":1}`)
		mustStatus(t, res, http.StatusNotFound)
		jsonEqual(t, res.raw, `{"message":"Not found"}`)
	})
	t.Run("delete then 404, delete again 204", func(t *testing.T) {
		mustStatus(t, e.json("DELETE", "/services/svc1", ""), http.StatusNoContent)
		mustStatus(t, e.json("GET", "/services/"+id, ""), http.StatusNotFound)
		mustStatus(t, e.json("DELETE", "/services/svc1", ""), http.StatusNoContent)
		mustStatus(t, e.json("DELETE", "/services/"+id, ""), http.StatusNoContent)
	})
	if got := e.applier.count(); got != 6 {
		t.Errorf("got %d applied changes, want 6 (create, patch, put, 2 put-creates, delete)", got)
	}
}

func TestErrors(t *testing.T) {
	e := newTestEnv(t)
	e.mustCreate("/services", `{"name":"dup","host":"a.test"}`)
	tests := []struct {
		name, method, path, ct, body string
		status                       int
		want                         string
	}{
		{"unknown path", "GET", "/nope", "", "", 404, `{"message":"Not found"}`},
		{"too deep", "GET", "/services/a/routes/b/c", "", "", 404, `{"message":"Not found"}`},
		{"wrong method", "DELETE", "/services", "", "", 405, `{"message":"Method not allowed"}`},
		{"malformed json", "POST", "/services", "application/json", `{"host":`, 400, `{"message":"Cannot parse JSON body"}`},
		{"unsupported type", "POST", "/services", "text/plain", `host=x`, 415, `{"message":"Unsupported Media Type"}`},
		{"unknown field", "POST", "/services", "application/json", `{"host":"a.test","foo":1}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (foo: unknown field)","fields":{"foo":"unknown field"}}`},
		{"missing host", "POST", "/services", "application/json", `{}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (host: required field missing)","fields":{"host":"required field missing"}}`},
		{"wrong types", "POST", "/services", "application/json", `{"host":1,"port":"80"}`, 400,
			`{"code":2,"name":"schema violation","message":"2 schema violations (host: expected a string; port: expected an integer)","fields":{"host":"expected a string","port":"expected an integer"}}`},
		{"bad protocol", "POST", "/services", "application/json", `{"host":"a.test","protocol":"ftp"}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (protocol: expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp)","fields":{"protocol":"expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp"}}`},
		{"duplicate name", "POST", "/services", "application/json", `{"name":"dup","host":"b.test"}`, 409,
			`{"code":5,"name":"unique constraint violation","message":"UNIQUE violation detected on '{name=\"dup\"}'","fields":{"name":"dup"}}`},
		{"invalid regex path", "POST", "/routes", "application/json", `{"paths":["/ok","~/a("]}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (paths.2: invalid regex: '/a(' (PCRE returned: error parsing regexp: missing closing ): ` + "`^/a(`" + `))","fields":{"paths":[null,"invalid regex: '/a(' (PCRE returned: error parsing regexp: missing closing ): ` + "`^/a(`" + `)"]}}`},
		{"route without matcher", "POST", "/routes", "application/json", `{"protocols":["http"]}`, 400,
			`{"code":2,"name":"schema violation","message":"schema violation (must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http')","fields":{"@entity":["must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"]}}`},
		{"unresolved service name", "POST", "/routes", "application/json", `{"paths":["/x"],"service":{"name":"ghost"}}`, 400,
			`{"code":13,"name":"foreign keys unresolved","message":"foreign key unresolved (service.name: the foreign key cannot be resolved with '{name=\"ghost\"}' for an existing 'services' entity)","fields":{"service":{"name":"the foreign key cannot be resolved with '{name=\"ghost\"}' for an existing 'services' entity"}}}`},
		{"missing service id", "POST", "/routes", "application/json", `{"paths":["/x"],"service":{"id":"8f0a5d0c-2b6e-4f41-9a57-2d0b7d6b1f00"}}`, 400,
			`{"code":4,"name":"foreign key violation","message":"the foreign key '{id=\"8f0a5d0c-2b6e-4f41-9a57-2d0b7d6b1f00\"}' does not reference an existing 'services' entity.","fields":{"service":{"id":"8f0a5d0c-2b6e-4f41-9a57-2d0b7d6b1f00"}}}`},
		{"size not a number", "GET", "/services?size=abc", "", "", 400, `{"code":9,"name":"invalid size","message":"size must be a number"}`},
		{"size out of range", "GET", "/services?size=1001", "", "", 400, `{"code":9,"name":"invalid size","message":"size must be an integer between 1 and 1000"}`},
		{"mixed tag separators", "GET", "/services?tags=a,b/c", "", "", 400,
			`{"code":11,"name":"invalid options","message":"invalid option (tags: invalid filter syntax)","options":{"tags":"invalid filter syntax"}}`},
		{"too many tags", "GET", "/services?tags=a,b,c,d,e,f", "", "", 400,
			`{"code":11,"name":"invalid options","message":"invalid option (tags: cannot query more than 5 tags)","options":{"tags":"cannot query more than 5 tags"}}`},
		{"schema of unknown entity", "GET", "/schemas/nope", "", "", 404, `{"message":"No entity named 'nope'"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.do(tc.method, tc.path, tc.ct, tc.body)
			mustStatus(t, res, tc.status)
			jsonEqual(t, res.raw, tc.want)
		})
	}
	t.Run("database unchanged after bad writes", func(t *testing.T) {
		res := e.json("GET", "/services", "")
		if n := len(res.body["data"].([]any)); n != 1 {
			t.Errorf("got %d services, want 1", n)
		}
		res = e.json("GET", "/routes", "")
		if n := len(res.body["data"].([]any)); n != 0 {
			t.Errorf("got %d routes, want 0", n)
		}
	})
	t.Run("options", func(t *testing.T) {
		res := e.do("OPTIONS", "/services", "", "")
		mustStatus(t, res, http.StatusNoContent)
		if got := res.header.Get("Allow"); !strings.Contains(got, "POST") || !strings.Contains(got, "GET") {
			t.Errorf("got Allow %q, want GET and POST", got)
		}
	})
	t.Run("head", func(t *testing.T) {
		res := e.do("HEAD", "/services/dup", "", "")
		mustStatus(t, res, http.StatusOK)
		if res.raw != "" {
			t.Errorf("got body %q, want none", res.raw)
		}
	})
}
