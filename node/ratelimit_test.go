package node

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/grapevine-gw/grapevine/internal/testutil"
	"github.com/grapevine-gw/grapevine/node/config"
)

// The rate-limiting cluster policy through real nodes sharing one
// PostgreSQL, on their own loopback range (127.0.60.x). Kong 3.9's
// kong/plugins/rate-limiting/handler.lua decides the headers, the 429 and
// what fault_tolerant does; policies/cluster.lua and daos.lua the counters'
// table and key.

func rateLimitNodeConfig(t *testing.T, dsn string, i int) config.Config {
	cfg := testConfig(t, dsn)
	host := fmt.Sprintf("127.0.60.%d", i+1)
	cfg.ProxyListen = []string{host + ":8000"}
	cfg.AdminListen = []string{host + ":8001"}
	cfg.ClusterListen = host + ":7946"
	cfg.DBUpdateFrequency = time.Second
	return cfg
}

// waitRateLimited waits until node n's path answers with the plugin's
// X-RateLimit-Limit-Day header, probing with its own X-Client value so
// the probes count against nobody the test measures.
func waitRateLimited(t *testing.T, n *Node, path, limit string) {
	t.Helper()
	probe := 0
	eventually(t, 10*time.Second, func() error {
		probe++
		status, hdr, _ := proxyDo(t, n, "GET", path, "X-Client: probe-"+strconv.Itoa(probe))
		if got := hdr.Get("X-RateLimit-Limit-Day"); status != 200 || got != limit {
			return fmt.Errorf("%s %s: got %d with X-RateLimit-Limit-Day %q, want 200 with %q", n.Name(), path, status, got, limit)
		}
		return nil
	})
}

// TestRateLimitingClusterPolicyExactAcrossNodes: parallel clients spread
// over a 3-node cluster against a limit of L get exactly L through in
// total, and every refusal is Kong's 429 with nothing left.
func TestRateLimitingClusterPolicyExactAcrossNodes(t *testing.T) {
	const limit, perNode, each = 30, 4, 8
	dsn := bootstrappedDatabase(t)
	nodes := make([]*Node, 3)
	for i := range nodes {
		nodes[i] = startClusterNode(t, rateLimitNodeConfig(t, dsn, i), fastHooks)
	}
	up := newUpstream(t)
	mustAdmin(t, nodes[0], 201, "POST", "/services", fmt.Sprintf(`{"name":"s1","url":%q}`, up.URL))
	mustAdmin(t, nodes[0], 201, "POST", "/services/s1/routes", `{"name":"r1","paths":["/r1"]}`)
	mustAdmin(t, nodes[0], 201, "POST", "/routes/r1/plugins", fmt.Sprintf(
		`{"name":"rate-limiting","config":{"policy":"cluster","day":%d,"year":1000,"limit_by":"header","header_name":"X-Client"}}`, limit))
	for _, n := range nodes {
		waitRateLimited(t, n, "/r1", strconv.Itoa(limit))
	}

	sendAllAtOnce(t, nodes, perNode, each, limit, func(n *Node, status int, hdr http.Header, body string) {
		if status == 429 && (!strings.Contains(body, "API rate limit exceeded") || hdr.Get("X-RateLimit-Remaining-Day") != "0" || hdr.Get("Retry-After") == "") {
			t.Errorf("%s: got 429 %q with X-RateLimit-Remaining-Day %q, Retry-After %q; want Kong's message, 0 left and Retry-After",
				n.Name(), body, hdr.Get("X-RateLimit-Remaining-Day"), hdr.Get("Retry-After"))
		}
	})
	// The year window counted the same requests: what is left of it is
	// the same on every node.
	for i, n := range nodes {
		_, hdr, _ := proxyDo(t, n, "GET", "/r1", "X-Client: measured")
		if got := hdr.Get("X-RateLimit-Remaining-Year"); got != strconv.Itoa(1000-limit) {
			t.Errorf("node %d: got X-RateLimit-Remaining-Year %q, want %d", i, got, 1000-limit)
		}
	}
}

// TestRateLimitingClusterPolicyDatabaseDown cuts a node off from its
// database (its connections go through a relay the test closes). As in
// Kong's handler, fault_tolerant false answers 500 "An unexpected error
// occurred", fault_tolerant true lets requests through without
// rate-limiting headers and logs the failure at error level. A client
// already refused for a used-up window stays refused from the node's
// memory: its window cannot have room again before it ends.
func TestRateLimitingClusterPolicyDatabaseDown(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	cfg := rateLimitNodeConfig(t, dsn, 10)
	host, _ := splitAddr(t, cfg.ClusterListen)
	relay := startPgRelay(t, host, fmt.Sprintf("%s:%d", cfg.PgHost, cfg.PgPort))
	relayHost, relayPort := splitAddr(t, relay.ln.Addr().String())
	cfg.PgHost = relayHost
	cfg.PgPort, _ = strconv.Atoi(relayPort)
	cfg.PgTimeout = time.Second
	cfg.ClusterListen = ""
	n, logs := startLoggedNode(t, cfg, fastHooks)
	up := newUpstream(t)
	mustAdmin(t, n, 201, "POST", "/services", fmt.Sprintf(`{"name":"s1","url":%q}`, up.URL))
	mustAdmin(t, n, 201, "POST", "/services/s1/routes", `{"name":"strict","paths":["/strict"]}`)
	mustAdmin(t, n, 201, "POST", "/services/s1/routes", `{"name":"tolerant","paths":["/tolerant"]}`)
	mustAdmin(t, n, 201, "POST", "/routes/strict/plugins",
		`{"name":"rate-limiting","config":{"policy":"cluster","day":2,"fault_tolerant":false,"limit_by":"header","header_name":"X-Client"}}`)
	mustAdmin(t, n, 201, "POST", "/routes/tolerant/plugins",
		`{"name":"rate-limiting","config":{"policy":"cluster","day":100,"limit_by":"header","header_name":"X-Client"}}`)
	waitRateLimited(t, n, "/strict", "2")
	waitRateLimited(t, n, "/tolerant", "100")
	for i, want := range []int{200, 200, 429} {
		if status, _, _ := proxyDo(t, n, "GET", "/strict", "X-Client: used-up"); status != want {
			t.Fatalf("request %d before the cut: got %d, want %d", i+1, status, want)
		}
	}

	relay.close()
	tests := []struct {
		name, path, client string
		status             int
		body               string
		headers            bool
	}{
		{"strict: 500", "/strict", "fresh", 500, "An unexpected error occurred", false},
		{"strict, used up: still 429", "/strict", "used-up", 429, "API rate limit exceeded", true},
		{"tolerant: through, no headers", "/tolerant", "fresh", 200, "upstream saw /", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := proxyDo(t, n, "GET", tt.path, "X-Client: "+tt.client)
			if status != tt.status || !strings.Contains(body, tt.body) {
				t.Errorf("got %d %q, want %d with %q", status, body, tt.status, tt.body)
			}
			if got := hdr.Get("X-RateLimit-Limit-Day") != ""; got != tt.headers {
				t.Errorf("got rate-limiting headers %v, want %v", got, tt.headers)
			}
		})
	}
	if !strings.Contains(logs.String(), "failed to get usage") || !strings.Contains(logs.String(), `"level":"error"`) {
		t.Errorf("got no error-level line for the failed usage in the node's log:\n%s", logs.String())
	}
}

// TestRateLimitingRedisPolicyExactAcrossNodes: three nodes counting in one
// real redis-server (policies/init.lua's redis policy, Kong's keys) let
// exactly L of the parallel requests through. The plugin is configured
// with the deprecated config.redis_host/redis_port names Kong 3.9 still
// accepts. With Redis gone, fault_tolerant (the default) lets a new client
// through without headers, and a client refused for a used-up window stays
// refused from memory.
func TestRateLimitingRedisPolicyExactAcrossNodes(t *testing.T) {
	const limit, perNode, each = 30, 4, 8
	redisAddr, stopRedis := testutil.StartRedis(t, "127.0.60.100")
	redisHost, redisPort := splitAddr(t, redisAddr)
	dsn := bootstrappedDatabase(t)
	nodes := make([]*Node, 3)
	for i := range nodes {
		nodes[i] = startClusterNode(t, rateLimitNodeConfig(t, dsn, 20+i), fastHooks)
	}
	up := newUpstream(t)
	mustAdmin(t, nodes[0], 201, "POST", "/services", fmt.Sprintf(`{"name":"s1","url":%q}`, up.URL))
	route := mustAdmin(t, nodes[0], 201, "POST", "/services/s1/routes", `{"name":"r1","paths":["/r1"]}`)
	mustAdmin(t, nodes[0], 201, "POST", "/routes/r1/plugins", fmt.Sprintf(`{"name":"rate-limiting","config":{"policy":"redis",
		"redis_host":%q,"redis_port":%s,"day":%d,"year":1000,"limit_by":"header","header_name":"X-Client"}}`, redisHost, redisPort, limit))
	for _, n := range nodes {
		waitRateLimited(t, n, "/r1", strconv.Itoa(limit))
	}

	sendAllAtOnce(t, nodes, perNode, each, limit, nil)
	// Kong's key: ratelimit:<route_id>:<service_id>:<identifier>:<window start ms>:<period>,
	// the service all zeros for a plugin on a route.
	rc := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rc.Close()
	day := time.Now().UTC().Truncate(24 * time.Hour).UnixMilli()
	key := fmt.Sprintf("ratelimit:%s:00000000-0000-0000-0000-000000000000:measured:%d:day", route["id"], day)
	if got, err := rc.Get(context.Background(), key).Result(); err != nil || got != strconv.Itoa(limit) {
		t.Errorf("got %s = %q (%v) in Redis, want %d", key, got, err, limit)
	}

	stopRedis()
	tests := []struct {
		name, client string
		status       int
		headers      bool
	}{
		{"used up: still 429", "measured", 429, true},
		{"new client: through without headers", "fresh", 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := proxyDo(t, nodes[1], "GET", "/r1", "X-Client: "+tt.client)
			if status != tt.status {
				t.Errorf("got %d %q, want %d", status, body, tt.status)
			}
			if got := hdr.Get("X-RateLimit-Limit-Day") != ""; got != tt.headers {
				t.Errorf("got rate-limiting headers %v, want %v", got, tt.headers)
			}
		})
	}
}

// sendAllAtOnce sends each requests to /r1 (client "measured") from
// perNode goroutines on every node at once, hands each answer to check
// (when set), and expects exactly limit of them 200 and the rest 429.
func sendAllAtOnce(t *testing.T, nodes []*Node, perNode, each, limit int, check func(n *Node, status int, hdr http.Header, body string)) {
	t.Helper()
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for _, n := range nodes {
		for range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					status, hdr, body := proxyDo(t, n, "GET", "/r1", "X-Client: measured")
					if check != nil {
						check(n, status, hdr, body)
					}
					mu.Lock()
					codes[status]++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	total := len(nodes) * perNode * each
	if codes[200] != limit || codes[429] != total-limit {
		t.Errorf("got %v over %d nodes, want exactly %d × 200 and %d × 429", codes, len(nodes), limit, total-limit)
	}
}
