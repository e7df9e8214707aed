package node

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestKeyWithTTLStopsWorking checks a key-auth key written with Kong's ttl
// (spec/03-plugins/09-key-auth/02-access_spec.lua "authenticate for up to
// 'ttl'") authenticates on another node until it expires, then gets 401
// there with nothing sent to that node: the database deletes expired rows
// without an event, so the node's credential index must refuse the key by
// its own clock.
func TestKeyWithTTLStopsWorking(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	a := startClusterNode(t, pluginNodeConfig(t, dsn, 2), fastHooks)
	b := startClusterNode(t, pluginNodeConfig(t, dsn, 3), fastHooks)
	const ttl = 3
	created := seedKeysWithAndWithoutTTL(t, a, ttl)

	for name, n := range map[string]*Node{"A": a, "B": b} {
		eventually(t, 10*time.Second, func() error {
			if status, _, _ := proxyDo(t, n, "GET", "/r1", "apikey: short"); status != 200 {
				if time.Since(created) >= ttl*time.Second {
					t.Fatalf("node %s: the key expired before it was seen to work; the machine is too slow for this test", name)
				}
				return fmt.Errorf("node %s: got %d with the key, want 200 while its ttl lasts", name, status)
			}
			return nil
		})
	}
	for name, n := range map[string]*Node{"A": a, "B": b} {
		eventually(t, 2*ttl*time.Second, func() error {
			if status, _, _ := proxyDo(t, n, "GET", "/r1", "apikey: short"); status != 401 {
				return fmt.Errorf("node %s: got %d with the expired key, want 401", name, status)
			}
			return nil
		})
		// The ttl counts from created_at, in whole seconds as in Kong.
		if time.Since(created) < (ttl-1)*time.Second {
			t.Errorf("node %s: refused the key before its ttl ran out", name)
		}
		if status, _, _ := proxyDo(t, n, "GET", "/r1", "apikey: forever"); status != 200 {
			t.Errorf("node %s: got %d with the key without ttl, want 200", name, status)
		}
	}
}

// TestCachedKeyExpires: a key written with a ttl keeps its expiry in the
// configuration cache, so a node started while the database is down,
// serving that cache, refuses the key once it expires, as it would with
// the database (the key-auth spec above; the cache is Grapevine's).
func TestCachedKeyExpires(t *testing.T) {
	srv, dsn := ownDatabase(t)
	cfg := resilConfig(t, dsn, "127.0.70.9", t.TempDir())
	n := startClusterNode(t, cfg, fastHooks)
	const ttl = 6
	created := seedKeysWithAndWithoutTTL(t, n, ttl)
	eventually(t, 5*time.Second, func() error {
		body, err := readCache(filepath.Join(cfg.Prefix, cacheFileName), n.databaseID())
		if err != nil || len(body.Tables["keyauth_credentials"]) != 2 {
			return fmt.Errorf("the cache: got %d keys (%v), want 2", len(body.Tables["keyauth_credentials"]), err)
		}
		return nil
	})
	stopNode(t, n)
	srv.Stop(t)

	cached := startClusterNode(t, cfg, fastHooks)
	if src := statusOf(t, cached)["configuration_source"]; src != "cache" {
		t.Fatalf("got configuration_source %v, want cache", src)
	}
	if status, _, _ := proxyDo(t, cached, "GET", "/r1", "apikey: short"); status != 200 && time.Since(created) < (ttl-1)*time.Second {
		t.Errorf("got %d with the key before its ttl ran out, want 200", status)
	}
	eventually(t, 2*ttl*time.Second, func() error {
		if status, _, _ := proxyDo(t, cached, "GET", "/r1", "apikey: short"); status != 401 {
			return fmt.Errorf("got %d with the expired key from the cache, want 401", status)
		}
		return nil
	})
	if time.Since(created) < (ttl-1)*time.Second {
		t.Errorf("refused the key before its ttl ran out")
	}
	if status, _, _ := proxyDo(t, cached, "GET", "/r1", "apikey: forever"); status != 200 {
		t.Errorf("got %d with the key without ttl, want 200", status)
	}
}

// seedKeysWithAndWithoutTTL makes route /r1 (to a live upstream) need
// key-auth, and gives consumer alice the key "forever" and the key
// "short", which expires ttl seconds after the time returned.
func seedKeysWithAndWithoutTTL(t *testing.T, n *Node, ttl int) time.Time {
	t.Helper()
	up := newUpstream(t)
	mustAdmin(t, n, 201, "POST", "/services", fmt.Sprintf(`{"name":"s1","url":%q}`, up.URL))
	mustAdmin(t, n, 201, "POST", "/services/s1/routes", `{"name":"r1","paths":["/r1"]}`)
	mustAdmin(t, n, 201, "POST", "/routes/r1/plugins", `{"name":"key-auth"}`)
	mustAdmin(t, n, 201, "POST", "/consumers", `{"username":"alice"}`)
	mustAdmin(t, n, 201, "POST", "/consumers/alice/key-auth", `{"key":"forever"}`)
	created := time.Now()
	mustAdmin(t, n, 201, "POST", "/consumers/alice/key-auth", fmt.Sprintf(`{"key":"short","ttl":%d}`, ttl))
	return created
}
