package proxy

import (
	"fmt"
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
)

// hash_on uri_capture hashes the named group of the route's path regex
// that matched; a route matched by prefix (no captures) or a group that
// took no part falls back to hash_fallback (kong/runloop/balancer/init.lua
// get_value_to_hash: router_matches.uri_captures[hash_on_uri_capture]).
func TestBalancedHashOnURICapture(t *testing.T) {
	ts := []*target{startTarget(t, "127.0.43.10"), startTarget(t, "127.0.43.11"), startTarget(t, "127.0.43.12")}
	var es []entity.Target
	for i, tg := range ts {
		es = append(es, testTargetEntity(targetIDs(i+1), tg.addr(), 100))
	}
	u := testUpstreamEntity("backend.test", "consistent-hashing", "", func(u *entity.Upstream) {
		u.HashOn, u.HashOnURICapture = "uri_capture", ptr("tenant")
		u.HashFallback, u.HashFallbackHeader = "header", ptr("X-Key")
	})
	svc := testService(t, idA, "backend.test:80")
	snap, warnings := NewSnapshot(SnapshotInput{
		Services: []entity.Service{svc},
		Routes: []entity.Route{
			testRoute(idB, idA, paths(`~/t/(?<tenant>[a-z]+)/`, `~/u/(?<tenant>[a-z]+)?-(?<other>\d+)$`)),
			testRoute(idC, idA, paths("/p")),
		},
		Upstreams: []entity.Upstream{u},
		Targets:   es,
	})
	if len(warnings) > 0 {
		t.Fatal(warnings)
	}
	s := startProxy(t, snap)
	get := func(t *testing.T, path, key string) string {
		t.Helper()
		status, _, body := send(t, s, "GET", path, map[string]string{"X-Key": key})
		if status != 200 {
			t.Fatalf("%s: got %d %q", path, status, body)
		}
		return body
	}

	t.Run("the capture decides, whatever the fallback's header", func(t *testing.T) {
		spread := map[string]bool{}
		for k := range 30 {
			tenant := "tenant" + string(rune('a'+k/10)) + string(rune('a'+k%10))
			first := get(t, "/t/"+tenant+"/x", "k0")
			for n := range 4 {
				path := fmt.Sprintf("/t/%s/%d", tenant, n)
				if again := get(t, path, fmt.Sprintf("k%d", n+1)); again != first {
					t.Fatalf("tenant %s: got %s then %s (%s), want the same target", tenant, first, again, path)
				}
			}
			spread[first] = true
		}
		if len(spread) != 3 {
			t.Errorf("30 tenants reached %d targets, want 3", len(spread))
		}
	})
	for _, tc := range []struct{ name, path string }{
		{"a prefix route has no captures", "/p/%d"},
		{"a group that took no part", "/u/-%d"},
	} {
		t.Run(tc.name+": the fallback decides", func(t *testing.T) {
			spread := map[string]bool{}
			for k := range 30 {
				key := fmt.Sprintf("key-%d", k)
				first := get(t, fmt.Sprintf(tc.path, 0), key)
				for n := 1; n < 4; n++ {
					if again := get(t, fmt.Sprintf(tc.path, n), key); again != first {
						t.Fatalf("key %s: got %s then %s, want the same target", key, first, again)
					}
				}
				spread[first] = true
			}
			if len(spread) != 3 {
				t.Errorf("30 keys reached %d targets, want 3", len(spread))
			}
		})
	}
}
