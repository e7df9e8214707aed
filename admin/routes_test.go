package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestNestedRoutes(t *testing.T) {
	e := newTestEnv(t)
	s1 := e.mustCreate("/services", `{"name":"s1","host":"one.test"}`)
	e.mustCreate("/services", `{"name":"s2","host":"two.test"}`)
	r1 := e.mustCreate("/services/s1/routes", `{"name":"r1","paths":["/one"]}`)
	e.mustCreate("/routes", `{"name":"r2","paths":["/two"],"service":{"name":"s2"}}`)

	t.Run("nested post injects the service", func(t *testing.T) {
		if got := r1["service"].(map[string]any)["id"]; got != s1["id"] {
			t.Errorf("got service %v, want %v", got, s1["id"])
		}
	})
	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{"nested get", "GET", "/services/s1/routes/r1", "", 200},
		{"nested get of other parent's route", "GET", "/services/s1/routes/r2", "", 404},
		{"nested patch of other parent's route", "PATCH", "/services/s1/routes/r2", `{"tags":["x"]}`, 404},
		{"nested delete of other parent's route", "DELETE", "/services/s1/routes/r2", "", 404},
		{"nested list of absent parent", "GET", "/services/ghost/routes", "", 404},
		{"foreign get", "GET", "/routes/r1/service", "", 200},
		{"foreign patch", "PATCH", "/routes/r1/service", `{"retries":2}`, 200},
		{"foreign delete", "DELETE", "/routes/r1/service", "", 405},
		{"foreign of absent route", "GET", "/routes/ghost/service", "", 404},
		{"referenced service", "DELETE", "/services/s1", "", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustStatus(t, e.json(tc.method, tc.path, tc.body), tc.status)
		})
	}
	t.Run("nested list", func(t *testing.T) {
		res := e.json("GET", "/services/s1/routes", "")
		mustStatus(t, res, 200)
		jsonEqual(t, fmt.Sprint(len(res.body["data"].([]any))), "1")
	})
	t.Run("referenced delete body", func(t *testing.T) {
		res := e.json("DELETE", "/services/s2", "")
		jsonEqual(t, res.raw, `{"code":4,"name":"foreign key violation","message":"an existing 'routes' entity references this 'services' entity","fields":{"@referenced_by":"routes"}}`)
		mustStatus(t, e.json("GET", "/services/s2", ""), 200)
	})
	t.Run("route without service has no foreign entity", func(t *testing.T) {
		e.mustCreate("/routes", `{"name":"lonely","hosts":["a.test"]}`)
		mustStatus(t, e.json("GET", "/routes/lonely/service", ""), 404)
		mustStatus(t, e.json("DELETE", "/routes/lonely/service", ""), 404)
	})
	t.Run("form bodies", func(t *testing.T) {
		form := url.Values{"name": {"formed"}, "paths[]": {"/f1", "/f2"}, "methods": {"GET"},
			"service.id": {s1["id"].(string)}, "strip_path": {"false"}, "regex_priority": {"7"}}
		res := e.do("POST", "/routes", "application/x-www-form-urlencoded", form.Encode())
		mustStatus(t, res, http.StatusCreated)
		if res.body["strip_path"] != false || res.body["regex_priority"] != 7.0 || len(res.body["paths"].([]any)) != 2 {
			t.Errorf("got %s, want typed form values", res.raw)
		}
	})
}

func TestPaginationAndTags(t *testing.T) {
	e := newTestEnv(t)
	for i := 0; i < 5; i++ {
		tag := "odd"
		if i%2 == 0 {
			tag = "even"
		}
		e.mustCreate("/services", fmt.Sprintf(`{"name":"p%d","host":"h%d.test","tags":["all","%s"]}`, i, i, tag))
	}
	t.Run("walk with size 2", func(t *testing.T) {
		seen, pages := 0, 0
		path := "/services?size=2"
		for path != "" {
			res := e.json("GET", path, "")
			mustStatus(t, res, 200)
			seen += len(res.body["data"].([]any))
			pages++
			next, _ := res.body["next"].(string)
			_, hasOffset := res.body["offset"]
			if (next == "") == hasOffset {
				t.Fatalf("got next %q with offset present %v, want both or neither", next, hasOffset)
			}
			path = next
		}
		if seen != 5 || pages != 3 {
			t.Errorf("got %d rows in %d pages, want 5 in 3", seen, pages)
		}
	})
	t.Run("exact last page has no offset", func(t *testing.T) {
		res := e.json("GET", "/services?size=5", "")
		if _, ok := res.body["offset"]; ok || res.body["next"] != nil {
			t.Errorf("got %s, want no offset and next null", res.raw)
		}
	})
	t.Run("next keeps tags and size", func(t *testing.T) {
		res := e.json("GET", "/services?size=1&tags=all", "")
		want := "/services?offset=" + url.QueryEscape(res.body["offset"].(string)) + "&tags=all&size=1"
		if res.body["next"] != want {
			t.Errorf("got next %v, want %s", res.body["next"], want)
		}
	})
	t.Run("bad offset", func(t *testing.T) {
		res := e.json("GET", "/services?offset=!!!", "")
		mustStatus(t, res, 400)
		if res.body["code"] != 7.0 {
			t.Errorf("got %s, want code 7", res.raw)
		}
	})
	tagTests := []struct {
		filter string
		want   int
	}{{"even", 3}, {"odd", 2}, {"all,even", 3}, {"odd,even", 0}, {"odd/even", 5}, {"none", 0}}
	for _, tc := range tagTests {
		t.Run("tags="+tc.filter, func(t *testing.T) {
			res := e.json("GET", "/services?tags="+url.QueryEscape(tc.filter), "")
			mustStatus(t, res, 200)
			if got := len(res.body["data"].([]any)); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
	t.Run("GET /tags/even", func(t *testing.T) {
		res := e.json("GET", "/tags/even", "")
		if got := len(res.body["data"].([]any)); got != 3 {
			t.Errorf("got %d, want 3", got)
		}
	})
	tagWalks := []struct {
		start       string
		wantRefs    int
		wantPages   int
		wantNextFor string // the start of the first page's next
	}{
		{"/tags?size=3", 10, 4, "/tags?offset="},
		{"/tags/even?size=2", 3, 2, "/tags/even?offset="},
		{"/tags", 10, 1, ""},
	}
	for _, tw := range tagWalks {
		t.Run("walk "+tw.start, func(t *testing.T) {
			seen := map[string]bool{}
			pages, path := 0, tw.start
			for path != "" {
				res := e.json("GET", path, "")
				mustStatus(t, res, 200)
				for _, d := range res.body["data"].([]any) {
					ref := d.(map[string]any)
					key := ref["entity_id"].(string) + " " + ref["tag"].(string)
					if seen[key] || ref["entity_name"] != "services" {
						t.Fatalf("got %v twice or of another entity", ref)
					}
					seen[key] = true
				}
				next, _ := res.body["next"].(string)
				if pages == 0 && !strings.HasPrefix(next, tw.wantNextFor) {
					t.Errorf("got next %q, want it to start with %q", next, tw.wantNextFor)
				}
				pages++
				path = next
			}
			if len(seen) != tw.wantRefs || pages != tw.wantPages {
				t.Errorf("got %d tags in %d pages, want %d in %d", len(seen), pages, tw.wantRefs, tw.wantPages)
			}
		})
	}
	t.Run("GET /tags bad offset", func(t *testing.T) {
		res := e.json("GET", "/tags?offset=!!!", "")
		mustStatus(t, res, 400)
		if res.body["code"] != 7.0 {
			t.Errorf("got %s, want code 7", res.raw)
		}
	})
}

func TestInfoEndpoints(t *testing.T) {
	e := newTestEnv(t)
	t.Run("root", func(t *testing.T) {
		res := e.json("GET", "/", "")
		mustStatus(t, res, 200)
		conf := res.body["configuration"].(map[string]any)
		if res.body["version"] != "3.9.1" || res.body["tagline"] != "Welcome to kong" || conf["database"] != "postgres" ||
			conf["router_flavor"] != "traditional_compatible" || len(conf["proxy_listeners"].([]any)) != 1 {
			t.Errorf("got %s, want Kong's root shape", res.raw)
		}
	})
	t.Run("status", func(t *testing.T) {
		res := e.json("GET", "/status", "")
		if res.body["database"].(map[string]any)["reachable"] != true {
			t.Errorf("got %s, want database reachable", res.raw)
		}
	})
	t.Run("schema defaults", func(t *testing.T) {
		res := e.json("GET", "/schemas/routes", "")
		mustStatus(t, res, 200)
		if len(res.body["fields"].([]any)) != 21 {
			t.Errorf("got %d fields, want 21", len(res.body["fields"].([]any)))
		}
	})
	t.Run("validate", func(t *testing.T) {
		mustStatus(t, e.json("POST", "/schemas/services/validate", `{"host":"a.test"}`), 200)
		mustStatus(t, e.json("POST", "/schemas/routes/validate", `{"paths":["~/(("]}`), 400)
	})
	t.Run("endpoints", func(t *testing.T) {
		mustStatus(t, e.json("GET", "/endpoints", ""), 200)
	})
}
