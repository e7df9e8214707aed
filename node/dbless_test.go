package node

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grapevine-gw/grapevine/node/config"
)

// DB-less tests use loopback hosts 127.0.75.x, apart from the other tests'.
var nextDBLessHost atomic.Int32

func dblessHost() string {
	return fmt.Sprintf("127.0.75.%d", 1+nextDBLessHost.Add(1)%250)
}

// dblessConfig is a node with database = off serving file, on its own
// loopback host with gossip. Its pg_* keys point where no database
// listens: a DB-less node must never need one.
func dblessConfig(t *testing.T, file string) config.Config {
	cfg := config.Default()
	host := dblessHost()
	cfg.Database = "off"
	cfg.DeclarativeConfig = file
	cfg.PgHost, cfg.PgPort = "127.0.75.254", 1
	cfg.ProxyListen = []string{host + ":8000"}
	cfg.AdminListen = []string{host + ":8001"}
	cfg.ClusterListen = host + ":7946"
	cfg.Prefix = t.TempDir()
	return cfg
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// routeDoc is a declarative document with one service to up and one
// route on path.
func routeDoc(up, path string) string {
	return fmt.Sprintf(`_format_version: "3.0"
services:
- name: s1
  url: %s
  routes:
  - name: r1
    paths: [%s]
consumers:
- username: alice
`, up, path)
}

// adminRaw sends body with contentType and returns the status and body.
func adminRaw(t *testing.T, n *Node, method, path, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.AdminAddr().String()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func md5Of(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestDBLessNode: a node with database = off serves its declarative_config
// without PostgreSQL (Kong's DB-less mode), joins gossip with another
// such node through cluster_join, reads entities from its configuration,
// refuses entity writes as Kong's "off" strategy does, and replaces its
// whole configuration on POST /config and on a reload (SIGHUP).
func TestDBLessNode(t *testing.T) {
	up := newUpstream(t)
	file := filepath.Join(t.TempDir(), "kong.yml")
	first := routeDoc(up.URL, "/a")
	writeFile(t, file, first)
	a := startClusterNode(t, dblessConfig(t, file), fastHooks)
	cfgB := dblessConfig(t, file)
	cfgB.ClusterJoin = []string{a.clusterAddr}
	b := startClusterNode(t, cfgB, fastHooks)

	t.Run("serves the file", func(t *testing.T) {
		for _, n := range []*Node{a, b} {
			eventually(t, 5*time.Second, func() error { return serves(t, n, "/a/x") })
		}
	})
	t.Run("gossip membership", func(t *testing.T) {
		eventually(t, 10*time.Second, func() error {
			members, _ := mustAdmin(t, a, 200, "GET", "/cluster", "")["data"].([]any)
			if len(members) != 2 {
				return fmt.Errorf("got %d members, want 2", len(members))
			}
			return nil
		})
	})
	t.Run("status", func(t *testing.T) {
		// kong/api/routes/health.lua: DB-less has no "database" entry and
		// reports the document's hash (md5 of its text).
		body := mustAdmin(t, a, 200, "GET", "/status", "")
		if _, ok := body["database"]; ok {
			t.Errorf("got a database entry %v, want none", body["database"])
		}
		if got, want := body["configuration_hash"], md5Of(first); got != want {
			t.Errorf("got configuration_hash %v, want %s", got, want)
		}
	})
	t.Run("reads", func(t *testing.T) {
		mustAdmin(t, a, 200, "GET", "/services/s1", "")
		mustAdmin(t, a, 200, "GET", "/consumers/alice", "")
		routes := mustAdmin(t, a, 200, "GET", "/services/s1/routes", "")["data"].([]any)
		if len(routes) != 1 {
			t.Errorf("got %d routes of s1, want 1", len(routes))
		}
	})
	t.Run("writes refused", func(t *testing.T) {
		testDBLessWritesRefused(t, a)
	})
	t.Run("POST /config", func(t *testing.T) {
		testPostConfig(t, a, up.URL)
	})
	t.Run("reload", func(t *testing.T) {
		writeFile(t, file, routeDoc(up.URL, "/c"))
		if err := b.Reload(t.Context()); err != nil {
			t.Fatalf("reload: %v", err)
		}
		if err := serves(t, b, "/c/x"); err != nil {
			t.Error(err)
		}
		if err := notServes(t, b, "/a/x"); err != nil {
			t.Error(err)
		}
		writeFile(t, file, "_format_version: \"3.0\"\nservices: nope\n")
		if err := b.Reload(t.Context()); err == nil {
			t.Error("got no error reloading a bad file, want one")
		}
		if err := serves(t, b, "/c/x"); err != nil {
			t.Errorf("after a bad file: %v, want the last configuration served", err)
		}
	})
}

// testDBLessWritesRefused: entity writes answer 405 with Kong's code 12
// and message (kong/db/strategies/off/init.lua, "by '<key>'" when the path
// names the entity by its endpoint key), after the checks Kong's DAO makes
// first (kong/db/dao/init.lua: a bad entity is 400, deleting what is not
// there is 204).
func testDBLessWritesRefused(t *testing.T, n *Node) {
	svc := mustAdmin(t, n, 200, "GET", "/services/s1", "")
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		message                  string
	}{
		{"create", "POST", "/services", `{"name":"s2","host":"h.test"}`, 405, "cannot create 'services' entities when not using a database"},
		{"create nested", "POST", "/services/s1/routes", `{"paths":["/n"]}`, 405, "cannot create 'routes' entities when not using a database"},
		{"create invalid", "POST", "/services", `{"name":"s2","port":"nope"}`, 400, ""},
		{"update by name", "PATCH", "/services/s1", `{"retries":1}`, 405, "cannot update 'services' entities by 'name' when not using a database"},
		{"update by id", "PATCH", "/services/" + svc["id"].(string), `{"retries":1}`, 405, "cannot update 'services' entities when not using a database"},
		{"update missing", "PATCH", "/services/nope", `{"retries":1}`, 404, ""},
		{"upsert by name", "PUT", "/services/s9", `{"host":"h.test"}`, 405, "cannot create or update 'services' entities by 'name' when not using a database"},
		{"remove", "DELETE", "/consumers/alice", "", 405, "cannot remove 'consumers' entities by 'username' when not using a database"},
		{"remove missing", "DELETE", "/services/nope", "", 204, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := adminDo(t, n, tc.method, tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("got %d %v, want %d", status, body, tc.status)
			}
			if tc.message == "" {
				return
			}
			if body["message"] != tc.message || body["code"] != float64(12) || body["name"] != "operation unsupported" {
				t.Errorf("got %v, want code 12 %q", body, tc.message)
			}
		})
	}
	if err := serves(t, n, "/a/x"); err != nil {
		t.Errorf("after refused writes: %v", err)
	}
}

// testPostConfig: POST /config (kong/api/routes/config.lua) takes the
// document as a raw body, a JSON body or a config= form field, answers
// 201 with the entities loaded, 304 for the document served with
// check_hash=1, and 400 with Kong's flattened errors for a bad one,
// which changes nothing.
func testPostConfig(t *testing.T, n *Node, up string) {
	doc := routeDoc(up, "/b")
	status, raw := adminRaw(t, n, "POST", "/config", "text/yaml", doc)
	if status != 201 {
		t.Fatalf("POST /config: got %d %s, want 201", status, raw)
	}
	var loaded map[string]map[string]any
	if err := json.Unmarshal([]byte(raw), &loaded); err != nil || len(loaded["routes"]) != 1 {
		t.Errorf("got body %s, want the entities loaded by kind and id", raw)
	}
	if err := serves(t, n, "/b/x"); err != nil {
		t.Error(err)
	}
	if err := notServes(t, n, "/a/x"); err != nil {
		t.Error(err)
	}
	if got := mustAdmin(t, n, 200, "GET", "/status", "")["configuration_hash"]; got != md5Of(doc) {
		t.Errorf("got configuration_hash %v, want %s", got, md5Of(doc))
	}
	t.Run("check_hash", func(t *testing.T) {
		if status, raw := adminRaw(t, n, "POST", "/config?check_hash=1", "text/yaml", doc); status != 304 {
			t.Errorf("same document: got %d %s, want 304", status, raw)
		}
		if status, raw := adminRaw(t, n, "POST", "/config", "text/yaml", doc); status != 201 {
			t.Errorf("same document without check_hash: got %d %s, want 201", status, raw)
		}
	})
	t.Run("form field", func(t *testing.T) {
		form := url.Values{"config": {routeDoc(up, "/f")}}.Encode()
		if status, raw := adminRaw(t, n, "POST", "/config", "application/x-www-form-urlencoded", form); status != 201 {
			t.Fatalf("got %d %s, want 201", status, raw)
		}
		if err := serves(t, n, "/f/x"); err != nil {
			t.Error(err)
		}
	})
	t.Run("JSON body", func(t *testing.T) {
		body := `{"_format_version":"3.0","services":[{"name":"s1","url":"` + up + `","routes":[{"name":"r1","paths":["/b"]}]}]}`
		if status, raw := adminRaw(t, n, "POST", "/config", "application/json", body); status != 201 {
			t.Fatalf("got %d %s, want 201", status, raw)
		}
		if err := serves(t, n, "/b/x"); err != nil {
			t.Error(err)
		}
	})
	t.Run("flattened errors", func(t *testing.T) {
		bad := `_format_version: "3.0"
services:
- name: s1
  url: ` + up + `
  routes:
  - name: broken
    protocols: [nope]
    paths: [/z]
`
		status, raw := adminRaw(t, n, "POST", "/config?flatten_errors=1", "text/yaml", bad)
		if status != 400 {
			t.Fatalf("got %d %s, want 400", status, raw)
		}
		var body struct {
			Code      int `json:"code"`
			Flattened []struct {
				EntityType string `json:"entity_type"`
				EntityName string `json:"entity_name"`
				Errors     []struct{ Field, Message, Type string }
			} `json:"flattened_errors"`
		}
		if err := json.Unmarshal([]byte(raw), &body); err != nil {
			t.Fatal(err)
		}
		if body.Code != 14 || len(body.Flattened) != 1 || body.Flattened[0].EntityType != "route" ||
			body.Flattened[0].EntityName != "broken" || len(body.Flattened[0].Errors) == 0 {
			t.Errorf("got %s, want code 14 naming route \"broken\" and its errors", raw)
		}
		if err := serves(t, n, "/b/x"); err != nil {
			t.Errorf("after a bad document: %v, want the last configuration served", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if status, raw := adminRaw(t, n, "POST", "/config", "text/yaml", ""); status != 400 || !strings.Contains(raw, "expected a declarative configuration") {
			t.Errorf("got %d %s, want 400 expected a declarative configuration", status, raw)
		}
	})
	t.Run("GET /config", func(t *testing.T) {
		body := mustAdmin(t, n, 200, "GET", "/config", "")
		if text, _ := body["config"].(string); !strings.Contains(text, "_format_version") || !strings.Contains(text, "r1") {
			t.Errorf("got %v, want the configuration served as a declarative document", body)
		}
	})
	t.Run("key-auth ttl", func(t *testing.T) {
		// A key's ttl in a file is the Unix time it expires (Kong's export,
		// kong/db/strategies/postgres/init.lua); reads show the seconds
		// left (kong/db/strategies/off/init.lua), GET /config the time.
		expires := time.Now().Add(time.Hour).Unix()
		doc := strings.Replace(routeDoc(up, "/b"), "- username: alice\n", fmt.Sprintf(`- username: alice
  keyauth_credentials:
  - key: k1
    ttl: %d
`, expires), 1)
		if status, raw := adminRaw(t, n, "POST", "/config", "text/yaml", doc); status != 201 {
			t.Fatalf("POST /config: got %d %s, want 201", status, raw)
		}
		keys, _ := mustAdmin(t, n, 200, "GET", "/consumers/alice/key-auth", "")["data"].([]any)
		if len(keys) != 1 {
			t.Fatalf("got %d keys, want 1", len(keys))
		}
		if ttl, _ := keys[0].(map[string]any)["ttl"].(float64); ttl < 3590 || ttl > 3600 {
			t.Errorf("got ttl %v, want the seconds left (about 3600)", keys[0].(map[string]any)["ttl"])
		}
		text, _ := mustAdmin(t, n, 200, "GET", "/config", "")["config"].(string)
		if want := fmt.Sprintf("ttl: %d", expires); !strings.Contains(text, want) {
			t.Errorf("GET /config: got %s, want %q", text, want)
		}
	})
}

// sameFileDoc has an entity of most kinds, none given an id, timestamps
// of both kinds (a target's are milliseconds), and a plugin under a
// consumer: a random consumer id would change the plugin's document.
func sameFileDoc(up string) string {
	return fmt.Sprintf(`_format_version: "3.0"
services:
- name: s1
  url: %s
  routes:
  - name: r1
    paths: [/same]
  plugins:
  - name: correlation-id
- host: unnamed.test
upstreams:
- name: u1
  targets:
  - target: 10.0.0.1:80
consumers:
- username: alice
  plugins:
  - name: request-termination
    config: {status_code: 403}
plugins:
- name: cors
`, up)
}

// TestDBLessNodesServingOneFileAgree: two DB-less nodes loading the same
// file, and one of them given it again by POST /config a second later,
// report the same configuration hash in /status and /cluster. Ids the file
// leaves out are Kong's (generate_ids in
// kong/db/schema/others/declarative_config.lua: UUIDv5 of the endpoint key
// or cache_key in the kind's namespace under
// fd02801f-0957-4a15-a55a-c8d9606f30b5), and the load-time timestamps
// (Kong's process_auto_fields on insert) stay out of the hash.
func TestDBLessNodesServingOneFileAgree(t *testing.T) {
	up := newUpstream(t)
	file := filepath.Join(t.TempDir(), "kong.yml")
	doc := sameFileDoc(up.URL)
	writeFile(t, file, doc)
	a := startClusterNode(t, dblessConfig(t, file), fastHooks)
	loadedAt := time.Now().Unix()
	cfgB := dblessConfig(t, file)
	cfgB.ClusterJoin = []string{a.clusterAddr}
	b := startClusterNode(t, cfgB, fastHooks)

	hashes := func(t *testing.T) (status, cluster [2]any) {
		t.Helper()
		for i, n := range []*Node{a, b} {
			status[i] = mustAdmin(t, n, 200, "GET", "/status", "")["configuration_hash"]
			cluster[i] = mustAdmin(t, n, 200, "GET", "/cluster", "")["config_hash"]
		}
		return status, cluster
	}
	agree := func(t *testing.T) {
		t.Helper()
		status, cluster := hashes(t)
		if status[0] != md5Of(doc) || status[1] != status[0] {
			t.Errorf("/status configuration_hash: got %v, want both %s", status, md5Of(doc))
		}
		if cluster[0] == "" || cluster[1] != cluster[0] {
			t.Errorf("/cluster config_hash: got %v, want two equal", cluster)
		}
		eventually(t, 10*time.Second, func() error {
			if agreed := mustAdmin(t, a, 200, "GET", "/cluster", "")["config_hash_agreed"]; agreed != true {
				return fmt.Errorf("got config_hash_agreed %v, want true", agreed)
			}
			return nil
		})
	}
	t.Run("loaded from the file", agree)

	t.Run("Kong's ids", func(t *testing.T) {
		kongID := func(kind, key string) string {
			ns := uuid.NewSHA1(uuid.MustParse("fd02801f-0957-4a15-a55a-c8d9606f30b5"), []byte(kind))
			return uuid.NewSHA1(ns, []byte(key)).String()
		}
		s1 := kongID("services", "s1")
		for _, n := range []*Node{a, b} {
			if got := mustAdmin(t, n, 200, "GET", "/services/s1", "")["id"]; got != s1 {
				t.Errorf("%s: service s1: got id %v, want %s", n.Name(), got, s1)
			}
			plugins := mustAdmin(t, n, 200, "GET", "/services/s1/plugins", "")["data"].([]any)
			// kong/db/schema/entities/plugins.lua: cache_key {name, route, service, consumer}.
			want := kongID("plugins", "plugins:*:correlation-id::"+s1+":")
			if len(plugins) != 1 || plugins[0].(map[string]any)["id"] != want {
				t.Errorf("%s: plugins of s1: got %v, want one with id %s", n.Name(), plugins, want)
			}
		}
	})

	t.Run("POST /config a second later", func(t *testing.T) {
		for time.Now().Unix() <= loadedAt {
			time.Sleep(50 * time.Millisecond) // a later created_at than the file's load
		}
		if status, raw := adminRaw(t, b, "POST", "/config", "text/yaml", doc); status != 201 {
			t.Fatalf("POST /config: got %d %s, want 201", status, raw)
		}
		agree(t)
	})
}
