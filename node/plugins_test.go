package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/internal/luasandbox"
	"github.com/grapevine-gw/grapevine/node/config"
)

// proxyDo sends a request through a node's proxy with the given headers
// ("Name: value" pairs) and returns status, headers and body.
func proxyDo(t *testing.T, n *Node, method, path string, headers ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.ProxyAddr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// TestPluginsRunFromTheAdminAPI checks the node compiles plugin entities
// into the proxy's chains as they change: a global request-termination
// answers every route (kong/plugins/request-termination/handler.lua: the
// status's default message as JSON), a route's own instance wins over it,
// disabling one lets requests through, deleting the route's brings the
// global one back.
func TestPluginsRunFromTheAdminAPI(t *testing.T) {
	n := startNode(t, testConfig(t, bootstrappedDatabase(t)))
	up := newUpstream(t)
	mustAdmin(t, n, 201, "POST", "/services", fmt.Sprintf(`{"name":"s1","url":%q}`, up.URL))
	mustAdmin(t, n, 201, "POST", "/services/s1/routes", `{"name":"r1","paths":["/r1"]}`)
	mustAdmin(t, n, 201, "POST", "/services/s1/routes", `{"name":"r2","paths":["/r2"]}`)
	mustAdmin(t, n, 201, "POST", "/plugins", `{"name":"request-termination","config":{"status_code":503}}`)
	routePlugin := mustAdmin(t, n, 201, "POST", "/routes/r2/plugins", `{"name":"request-termination","config":{"status_code":418,"message":"teapot"}}`)

	type want struct {
		status int
		body   string
	}
	check := func(t *testing.T, wants map[string]want) {
		t.Helper()
		for path, w := range wants {
			status, hdr, body := proxyDo(t, n, "GET", path)
			if status != w.status || !strings.Contains(body, w.body) {
				t.Errorf("GET %s: got %d %q, want %d with %q", path, status, body, w.status, w.body)
			}
			if w.status != 200 && hdr.Get("Content-Type") != "application/json; charset=utf-8" {
				t.Errorf("GET %s: got Content-Type %q, want JSON", path, hdr.Get("Content-Type"))
			}
		}
	}
	t.Run("global and route instances", func(t *testing.T) {
		check(t, map[string]want{
			"/r1": {503, `{"message":"Service unavailable"}`},
			"/r2": {418, `{"message":"teapot"}`},
		})
	})
	t.Run("disabled route instance: the global one applies", func(t *testing.T) {
		// Kong drops a disabled instance from the combos: the next most
		// specific one applies.
		mustAdmin(t, n, 200, "PATCH", "/plugins/"+routePlugin["id"].(string), `{"enabled":false}`)
		check(t, map[string]want{"/r2": {503, "Service unavailable"}})
	})
	t.Run("deleted global instance", func(t *testing.T) {
		status, body := adminDo(t, n, "GET", "/plugins?size=10", "")
		if status != 200 {
			t.Fatalf("list plugins: %d", status)
		}
		for _, p := range body["data"].([]any) {
			if p.(map[string]any)["route"] == nil {
				mustAdmin(t, n, 204, "DELETE", "/plugins/"+p.(map[string]any)["id"].(string), "")
			}
		}
		check(t, map[string]want{"/r1": {200, "upstream saw /"}, "/r2": {200, "upstream saw /"}})
	})
	t.Run("request-transformer templates run", func(t *testing.T) {
		// kong/plugins/request-transformer/access.lua: $(…) values are
		// rendered per request against the client's query.
		mustAdmin(t, n, 201, "POST", "/routes/r2/plugins",
			`{"name":"request-transformer","config":{"add":{"querystring":["t:$(query_params.q)-x"]}}}`)
		if status, _, body := proxyDo(t, n, "GET", "/r2?q=1"); status != 200 || body != "upstream saw /?q=1&t=1-x" {
			t.Errorf("got %d %q, want 200 upstream saw /?q=1&t=1-x", status, body)
		}
	})
	t.Run("lua that does not load is refused", func(t *testing.T) {
		// kong/db/schema/typedefs.lua lua_code: validate_safe loads each
		// value in the sandbox (kong/tools/sandbox.lua); Kong's schema
		// violation names the field.
		status, body := adminDo(t, n, "POST", "/plugins",
			`{"name":"file-log","config":{"path":"/tmp/x.log","custom_fields_by_lua":{"f":"return 1 +"}}}`)
		fields, _ := body["fields"].(map[string]any)
		config, _ := fields["config"].(map[string]any)
		custom, _ := config["custom_fields_by_lua"].(map[string]any)
		msg, _ := custom["f"].(string)
		if status != 400 || body["name"] != "schema violation" || !strings.HasPrefix(msg, `Error parsing function: [string "return 1 +"]:1: `) {
			t.Errorf("got %d %v, want 400 schema violation with Error parsing function at config.custom_fields_by_lua.f", status, body)
		}
	})
	t.Run("echo answers with the request and this node", func(t *testing.T) {
		// kong/plugins/request-termination/handler.lua: echo's kong.node_id
		// is kong.node.get_id, the node_id of GET /; matched_route is the
		// route entity.
		mustAdmin(t, n, 201, "POST", "/routes/r1/plugins", `{"name":"request-termination","config":{"status_code":200,"echo":true}}`)
		_, root := adminDo(t, n, "GET", "/", "")
		status, _, body := proxyDo(t, n, "GET", "/r1/x?q=1")
		var got struct {
			Kong struct {
				NodeID string `json:"node_id"`
			} `json:"kong"`
			Request struct {
				Query map[string]any `json:"query"`
			} `json:"request"`
			Route struct {
				Name string `json:"name"`
			} `json:"matched_route"`
		}
		_ = json.Unmarshal([]byte(body), &got)
		if status != 200 || got.Kong.NodeID != root["node_id"] || got.Route.Name != "r1" || got.Request.Query["q"] != "1" {
			t.Errorf("got %d %s, want 200 with node_id %v, route r1 and query q=1", status, body, root["node_id"])
		}
	})
}

// pluginNodeConfig is a cluster node on its own loopback host in the
// plugins tests' range (127.0.30.x).
func pluginNodeConfig(t *testing.T, dsn string, i int) config.Config {
	cfg := testConfig(t, dsn)
	host := fmt.Sprintf("127.0.30.%d", i+1)
	cfg.ProxyListen = []string{host + ":8000"}
	cfg.AdminListen = []string{host + ":8001"}
	cfg.ClusterListen = host + ":7946"
	cfg.DBUpdateFrequency = time.Second
	return cfg
}

// TestKeyCreatedOnOneNodeAuthenticatesOnAnother checks consumers and
// credentials travel like every other change: a consumer and key created
// through node A's Admin API authenticate on node B's proxy, a deleted
// key stops working there, and neither change rebuilds the routing
// snapshot (the credential index is kept apart from it).
func TestKeyCreatedOnOneNodeAuthenticatesOnAnother(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	a := startClusterNode(t, pluginNodeConfig(t, dsn, 0), fastHooks)
	b := startClusterNode(t, pluginNodeConfig(t, dsn, 1), fastHooks)
	up := newUpstream(t)
	mustAdmin(t, a, 201, "POST", "/services", fmt.Sprintf(`{"name":"s1","url":%q}`, up.URL))
	mustAdmin(t, a, 201, "POST", "/services/s1/routes", `{"name":"r1","paths":["/r1"]}`)
	mustAdmin(t, a, 201, "POST", "/routes/r1/plugins", `{"name":"key-auth"}`)
	eventually(t, 10*time.Second, func() error {
		if status, _, _ := proxyDo(t, b, "GET", "/r1"); status != 401 {
			return fmt.Errorf("node B: got %d before the key exists, want 401", status)
		}
		return nil
	})

	snapBefore := b.proxy.Snapshot()
	consumer := mustAdmin(t, a, 201, "POST", "/consumers", `{"username":"alice"}`)
	mustAdmin(t, a, 201, "POST", "/consumers/alice/key-auth", `{"key":"secret-1"}`)
	eventually(t, 10*time.Second, func() error {
		status, _, body := proxyDo(t, b, "GET", "/r1", "apikey: secret-1", "X-Consumer-ID: forged")
		if status != 200 {
			return fmt.Errorf("node B: got %d %s with the new key, want 200", status, body)
		}
		return nil
	})
	if b.proxy.Snapshot() != snapBefore {
		t.Errorf("got a new routing snapshot on node B for a consumer and a key, want the same one")
	}

	mustAdmin(t, a, 204, "DELETE", "/consumers/"+consumer["id"].(string)+"/key-auth/secret-1", "")
	eventually(t, 10*time.Second, func() error {
		if status, _, _ := proxyDo(t, b, "GET", "/r1", "apikey: secret-1"); status != 401 {
			return fmt.Errorf("node B: got %d with the deleted key, want 401", status)
		}
		return nil
	})
}

// TestUntrustedLuaOff: with kong.conf's untrusted_lua = off the schema
// refuses custom_fields_by_lua (kong/tools/sandbox.lua: the sandbox
// errors with its err_msg, which validate_safe reports as
// "Error parsing function: …").
func TestUntrustedLuaOff(t *testing.T) {
	cfg := testConfig(t, bootstrappedDatabase(t))
	cfg.UntrustedLua = "off"
	n := startNode(t, cfg)
	t.Cleanup(func() { luasandbox.Configure(luasandbox.Settings{}) })
	status, body := adminDo(t, n, "POST", "/plugins",
		`{"name":"file-log","config":{"path":"/tmp/x.log","custom_fields_by_lua":{"f":"return 1"}}}`)
	want := "Error parsing function: loading of untrusted Lua code disabled because 'untrusted_lua' config option is set to 'off'"
	raw, _ := json.Marshal(body)
	if status != 400 || !strings.Contains(string(raw), want) {
		t.Errorf("got %d %s, want 400 with %q", status, raw, want)
	}
}
