package node

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// TestResponseRateLimitingSharedPolicies: two nodes counting one named
// limit in one store (kong/plugins/response-ratelimiting/policies: the
// cluster policy's response_ratelimiting_metrics, and Redis under Kong's
// response-ratelimit:<route>:<service>:<identifier>:<window ms>:<name>:
// <period> keys) refuse the answer that spends a limit used up on the
// other node.
func TestResponseRateLimitingSharedPolicies(t *testing.T) {
	const limit = 4
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Spend") != "" {
			w.Header().Set("X-Kong-Limit", "video=1")
		}
	}))
	t.Cleanup(up.Close)
	tests := []struct {
		name  string
		first int // the nodes' first address, 127.0.60.<first+1>
		redis bool
	}{
		{"cluster", 40, false},
		{"redis", 50, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			config := fmt.Sprintf(`"policy":"cluster","limit_by":"ip","limits":{"video":{"day":%d}}`, limit)
			var rc *redis.Client
			if tc.redis {
				addr, _ := testutil.StartRedis(t, "127.0.60.101")
				host, port := splitAddr(t, addr)
				config = fmt.Sprintf(`"policy":"redis","redis":{"host":%q,"port":%s},"limit_by":"ip","limits":{"video":{"day":%d}}`, host, port, limit)
				rc = redis.NewClient(&redis.Options{Addr: addr})
				t.Cleanup(func() { rc.Close() })
			}
			dsn := bootstrappedDatabase(t)
			nodes := []*Node{
				startClusterNode(t, rateLimitNodeConfig(t, dsn, tc.first), fastHooks),
				startClusterNode(t, rateLimitNodeConfig(t, dsn, tc.first+1), fastHooks),
			}
			mustAdmin(t, nodes[0], 201, "POST", "/services", fmt.Sprintf(`{"name":"s1","url":%q}`, up.URL))
			route := mustAdmin(t, nodes[0], 201, "POST", "/services/s1/routes", `{"name":"r1","paths":["/r1"]}`)
			mustAdmin(t, nodes[0], 201, "POST", "/routes/r1/plugins", `{"name":"response-ratelimiting","config":{`+config+`}}`)
			for _, n := range nodes {
				eventually(t, 10*time.Second, func() error {
					status, hdr, _ := proxyDo(t, n, "GET", "/r1")
					if got := hdr.Get("X-RateLimit-Remaining-video"); status != 200 || got != strconv.Itoa(limit) {
						return fmt.Errorf("%s: got %d with X-RateLimit-Remaining-video %q, want 200 with %d", n.Name(), status, got, limit)
					}
					return nil
				})
			}
			for i := 1; i <= limit+1; i++ {
				n := nodes[i%2]
				status, hdr, body := proxyDo(t, n, "GET", "/r1", "X-Spend: 1")
				want := 200
				if i > limit {
					want = 429
				}
				if status != want {
					t.Fatalf("answer %d, through %s: got %d %q, want %d", i, n.Name(), status, body, want)
				}
				if got, left := hdr.Get("X-RateLimit-Remaining-video-day"), max(0, limit-i); got != strconv.Itoa(left) {
					t.Errorf("answer %d: got X-RateLimit-Remaining-video-day %q, want %d", i, got, left)
				}
			}
			if rc != nil {
				day := time.Now().UTC().Truncate(24 * time.Hour).UnixMilli()
				key := fmt.Sprintf("response-ratelimit:%s:00000000-0000-0000-0000-000000000000:127.0.0.1:%d:video:day", route["id"], day)
				if got, err := rc.Get(context.Background(), key).Result(); err != nil || got != strconv.Itoa(limit) {
					t.Errorf("got %s = %q (%v) in Redis, want %d", key, got, err, limit)
				}
			}
		})
	}
}
