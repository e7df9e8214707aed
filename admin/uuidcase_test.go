package admin

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestUUIDsInAnyLetterCase: Kong takes a UUID in any letter case
// (kong/tools/uuid.lua is_valid_uuid matches with the "i" flag) and
// PostgreSQL's uuid type answers in lower case, so Kong stores and renders
// ids in lower case however they were sent: as a path key, a PUT id, a body
// id or a foreign reference.
func TestUUIDsInAnyLetterCase(t *testing.T) {
	e := newTestEnv(t)
	const lower = "6ba7b810-9dad-41d1-80b4-00c04fd430c8"
	upper := strings.ToUpper(lower)
	const lowerPut = "0b5b6b1e-7f0e-4c8e-9a51-3f9d3c0a7e11"
	upperPut := strings.ToUpper(lowerPut)

	svc := e.mustCreate("/services", `{"id":"`+upper+`","name":"s","host":"s.test"}`)
	route := e.mustCreate("/routes", `{"paths":["/"],"service":{"id":"`+upper+`"}}`)
	put := e.json("PUT", "/services/"+upperPut, `{"host":"p.test"}`)
	mustStatus(t, put, http.StatusOK)
	tests := []struct {
		name string
		got  any
		want string
	}{
		{"body id", svc["id"], lower},
		{"foreign reference", route["service"].(map[string]any)["id"], lower},
		{"PUT path id", put.body["id"], lowerPut},
		{"GET by upper-case path key", e.json("GET", "/services/"+upper, "").body["id"], lower},
		{"stored foreign reference", e.json("GET", "/routes/"+route["id"].(string), "").body["service"].(map[string]any)["id"], lower},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got id %v, want %s", tc.got, tc.want)
			}
		})
	}
	t.Run("nested under an upper-case parent", func(t *testing.T) {
		res := e.json("GET", "/services/"+upper+"/routes", "")
		mustStatus(t, res, http.StatusOK)
		if n := len(res.body["data"].([]any)); n != 1 {
			t.Errorf("got %d routes, want 1", n)
		}
		mustStatus(t, e.json("GET", "/services/"+upper+"/routes/"+strings.ToUpper(route["id"].(string)), ""), http.StatusOK)
	})
	t.Run("PUT by upper-case id replaces the same entity", func(t *testing.T) {
		res := e.json("PUT", "/services/"+upperPut, `{"host":"q.test"}`)
		mustStatus(t, res, http.StatusOK)
		if n := len(e.json("GET", "/services", "").body["data"].([]any)); n != 2 {
			t.Errorf("got %d services, want 2", n)
		}
	})
}

// TestForeignReferenceWithOtherFields: go-kong sends a route's whole
// Service and decK's validate sends {id, name}; Kong validates a foreign
// value with validate_primary_key(value, true), which ignores the other
// keys (kong/db/schema/init.lua), and stores only the primary key.
func TestForeignReferenceWithOtherFields(t *testing.T) {
	e := newTestEnv(t)
	svc := e.mustCreate("/services", `{"name":"s","host":"s.test"}`)
	id := svc["id"].(string)
	bodies := map[string]string{
		"whole service (go-kong)": `{"paths":["/a"],"service":{"id":"` + id + `","name":"s","host":"s.test","port":80,"protocol":"http"}}`,
		"id and name (decK)":      `{"paths":["/b"],"service":{"id":"` + id + `","name":"s"}}`,
		"upper-case id and name":  `{"paths":["/c"],"service":{"id":"` + strings.ToUpper(id) + `","name":"s"}}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			res := e.json("POST", "/routes", body)
			mustStatus(t, res, http.StatusCreated)
			jsonEqual(t, mustJSON(t, res.body["service"]), `{"id":"`+id+`"}`)
			stored := e.json("GET", "/routes/"+res.body["id"].(string), "")
			jsonEqual(t, mustJSON(t, stored.body["service"]), `{"id":"`+id+`"}`)
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	return string(b)
}
