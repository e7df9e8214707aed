package node

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// Balancer tests run their nodes on 127.0.41.x and their targets on
// 127.0.42.x, apart from the other node tests' 127.0.20.x.

// balancerCluster starts size nodes on 127.0.41.x sharing one database.
func balancerCluster(t *testing.T, size int) []*Node {
	t.Helper()
	dsn := bootstrappedDatabase(t)
	nodes := make([]*Node, size)
	for i := range nodes {
		cfg := testConfig(t, dsn)
		host := "127.0.41." + strconv.Itoa(i+1)
		cfg.ProxyListen, cfg.AdminListen = []string{host + ":8000"}, []string{host + ":8001"}
		cfg.ClusterListen = host + ":7946"
		cfg.DBUpdateFrequency = time.Second
		nodes[i] = startClusterNode(t, cfg, fastHooks)
	}
	for _, n := range nodes {
		eventually(t, 10*time.Second, func() error {
			if alive := n.aliveMembers(); alive != size {
				return fmt.Errorf("%s sees %d alive members, want %d", n.Name(), alive, size)
			}
			return nil
		})
	}
	return nodes
}

// countingTarget is a real upstream on ip answering with its address.
type countingTarget struct {
	*httptest.Server
	hits atomic.Int64
}

func startCountingTarget(t *testing.T, ip string) *countingTarget {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &countingTarget{}
	tg.Server = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.hits.Add(1)
		io.WriteString(w, ln.Addr().String())
	})}}
	tg.Start()
	t.Cleanup(tg.Close)
	return tg
}

func (tg *countingTarget) addr() string { return tg.Listener.Addr().String() }

// targetHealth reads a target's health from a node's GET
// /upstreams/{u}/health (Kong's shape: data[].health, node_id).
func targetHealth(t *testing.T, n *Node, upstream, target string) (string, error) {
	status, body := adminDo(t, n, "GET", "/upstreams/"+upstream+"/health", "")
	if status != 200 {
		return "", fmt.Errorf("GET health: %d %v", status, body)
	}
	if body["node_id"] != n.ID() {
		return "", fmt.Errorf("node_id: got %v, want %s", body["node_id"], n.ID())
	}
	data, _ := body["data"].([]any)
	for _, d := range data {
		m, _ := d.(map[string]any)
		if m["target"] == target {
			h, _ := m["health"].(string)
			return h, nil
		}
	}
	return "", fmt.Errorf("target %s not in %v", target, data)
}

func wantHealth(t *testing.T, n *Node, upstream, target, want string) func() error {
	return func() error {
		got, err := targetHealth(t, n, upstream, target)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s: %s is %s, want %s", n.Name(), target, got, want)
		}
		return nil
	}
}

// An upstream with targets written on one node balances on every node;
// consistent hashing sends a key to the same target on all of them; a
// target marked unhealthy through one node's Admin API is out of
// rotation on every node (Kong's post_health cluster event, here over
// gossip) until it is marked healthy again. go-kong's
// TestUpstreamNodeHealthService covers the list's shape.
func TestClusterBalancerAndTargetHealth(t *testing.T) {
	nodes := balancerCluster(t, 3)
	a, b := startCountingTarget(t, "127.0.42.1"), startCountingTarget(t, "127.0.42.2")
	w := nodes[0]
	mustAdmin(t, w, 201, "POST", "/upstreams", `{"name":"backend.test","hash_on":"header","hash_on_header":"X-Key",`+
		`"healthchecks":{"passive":{"unhealthy":{"tcp_failures":1}}}}`)
	mustAdmin(t, w, 201, "POST", "/upstreams/backend.test/targets", `{"target":"`+a.addr()+`"}`)
	mustAdmin(t, w, 201, "POST", "/upstreams/backend.test/targets", `{"target":"`+b.addr()+`"}`)
	mustAdmin(t, w, 201, "POST", "/services", `{"name":"s","host":"backend.test","retries":0}`)
	mustAdmin(t, w, 201, "POST", "/services/s/routes", `{"paths":["/b"]}`)
	for _, n := range nodes {
		eventually(t, 5*time.Second, func() error { return serves(t, n, "/b") })
	}

	for k := range 10 {
		key := "key-" + strconv.Itoa(k)
		var first string
		for _, n := range nodes {
			req, _ := http.NewRequest("GET", "http://"+n.ProxyAddr().String()+"/b", nil)
			req.Header.Set("X-Key", key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if first == "" {
				first = string(got)
			} else if string(got) != first {
				t.Fatalf("key %s: %s answered from %s, want %s as on the first node", key, n.Name(), got, first)
			}
		}
	}

	for _, n := range nodes {
		eventually(t, 3*time.Second, wantHealth(t, n, "backend.test", a.addr(), "HEALTHY"))
	}
	mustAdmin(t, w, 204, "PUT", "/upstreams/backend.test/targets/"+a.addr()+"/unhealthy", "")
	for _, n := range nodes {
		eventually(t, 3*time.Second, wantHealth(t, n, "backend.test", a.addr(), "UNHEALTHY"))
	}
	before := a.hits.Load()
	for _, n := range nodes {
		for range 5 {
			if status, body := proxyGet(t, n, "/b"); status != 200 || body != b.addr() {
				t.Fatalf("%s: got %d %q, want 200 from %s", n.Name(), status, body, b.addr())
			}
		}
	}
	if got := a.hits.Load() - before; got != 0 {
		t.Errorf("unhealthy target: got %d requests, want 0", got)
	}
	mustAdmin(t, nodes[2], 204, "PUT", "/upstreams/backend.test/targets/"+a.addr()+"/healthy", "")
	for _, n := range nodes {
		eventually(t, 3*time.Second, wantHealth(t, n, "backend.test", a.addr(), "HEALTHY"))
	}

	// Kong's 404s and 400s (spec/02-integration/04-admin_api/08-targets_routes_spec.lua).
	mustAdmin(t, w, 404, "PUT", "/upstreams/backend.test/targets/127.0.42.9:1234/healthy", "")
	mustAdmin(t, w, 404, "PUT", "/upstreams/nope.test/targets/"+a.addr()+"/healthy", "")
	mustAdmin(t, w, 404, "GET", "/upstreams/nope.test/health", "")
	mustAdmin(t, w, 201, "POST", "/upstreams", `{"name":"plain.test"}`)
	mustAdmin(t, w, 201, "POST", "/upstreams/plain.test/targets", `{"target":"`+a.addr()+`"}`)
	body := mustAdmin(t, w, 400, "PUT", "/upstreams/plain.test/targets/"+a.addr()+"/unhealthy", "")
	if body["message"] != "no healthchecker found for plain.test" {
		t.Errorf("checks off: got %v, want Kong's message", body["message"])
	}
	eventually(t, 3*time.Second, wantHealth(t, w, "plain.test", a.addr(), "HEALTHCHECKS_OFF"))
}
