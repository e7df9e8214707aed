package node

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDatabaseBlackholedUnderLoad drops every packet to and from
// PostgreSQL (no reset, no refusal: it just stops answering) under load
// through three nodes. Every request must still be served; Admin API
// writes must answer Kong's 503 {"message"} well before pg_timeout, even
// on connections the pool opened before the cut; /status must say the
// database is unreachable; and once packets flow again the nodes must
// take writes and serve them with no restart. (TestDatabaseOutageUnderLoad
// is the same with the server stopped, which refuses at once.)
func TestDatabaseBlackholedUnderLoad(t *testing.T) {
	dsn, u := blackholeableDatabase(t)
	up := newUpstream(t)
	var nodes []*Node
	for i := 1; i <= 3; i++ {
		cfg := resilConfig(t, dsn, fmt.Sprintf("127.0.74.%d", i), t.TempDir())
		cfg.PgTimeout = 5 * time.Second // Kong's default: a write must not wait for it
		nodes = append(nodes, startClusterNode(t, cfg, fastHooks))
	}
	mustAdmin(t, nodes[0], 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`"}`)
	mustAdmin(t, nodes[0], 201, "POST", "/services/s/routes", `{"paths":["/load"]}`)
	for _, n := range nodes {
		eventually(t, 5*time.Second, func() error { return serves(t, n, "/load") })
	}
	l := startLoad(t, nodes, "/load")
	time.Sleep(300 * time.Millisecond) // load before the outage too

	restore := dropPackets(t, "ip daddr "+u.Hostname()+" tcp dport "+u.Port(), "ip saddr "+u.Hostname()+" tcp sport "+u.Port())
	cutAt := time.Now()
	t.Run("writes answer 503 fast", func(t *testing.T) {
		for _, n := range nodes {
			began := time.Now()
			status, body := adminDo(t, n, "POST", "/services/s/routes", `{"paths":["/during"]}`)
			took := time.Since(began)
			if status != 503 || body["message"] != "database unavailable" {
				t.Errorf("%s: got %d %v, want 503 {\"message\":\"database unavailable\"}", n.Name(), status, body)
			}
			if took > 2*time.Second {
				t.Errorf("%s: the write took %s, want an answer well before pg_timeout (5s)", n.Name(), took.Round(time.Millisecond))
			}
			t.Logf("%s: write answered %d after %s", n.Name(), status, took.Round(time.Millisecond))
		}
	})
	t.Run("status says the database is unreachable", func(t *testing.T) {
		for _, n := range nodes {
			if databaseReachable(t, n) {
				t.Errorf("%s: /status says the database is reachable while it is blackholed", n.Name())
			}
		}
	})
	time.Sleep(time.Until(cutAt.Add(4 * time.Second))) // a few seconds of outage under load

	restore()
	t.Run("nodes reconnect and take writes with no restart", func(t *testing.T) {
		takeWritesAgain(t, nodes, 15*time.Second)
	})
	l.endWithoutFailures(t)
}

// TestNodeStartsFromItsCacheWhileTheDatabaseIsBlackholed restarts a node
// while every packet to PostgreSQL is dropped (no refusal: connection
// attempts just hang) and pg_timeout is Kong's 5 s. With a valid cache the
// node must serve it promptly, well before a single pg_timeout, say why in
// its log, keep trying the database in the background, and switch to it by
// itself once packets flow again. (TestNodeStartsFromItsCacheWithoutTheDatabase
// is the same with the server stopped, which refuses at once.)
func TestNodeStartsFromItsCacheWhileTheDatabaseIsBlackholed(t *testing.T) {
	dsn, u := blackholeableDatabase(t)
	up := newUpstream(t)
	cfg := resilConfig(t, dsn, "127.0.74.9", t.TempDir())
	cfg.PgTimeout = 5 * time.Second // Kong's default
	n := startClusterNode(t, cfg, fastHooks)
	mustAdmin(t, n, 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`"}`)
	mustAdmin(t, n, 201, "POST", "/services/s/routes", `{"paths":["/cached"]}`)
	eventually(t, 5*time.Second, func() error {
		body, err := readCache(filepath.Join(cfg.Prefix, cacheFileName), n.databaseID())
		if err != nil || body.ConfigHash != n.ConfigHash() {
			return fmt.Errorf("the cache: got hash %q (%v), want %q", body.ConfigHash, err, n.ConfigHash())
		}
		return nil
	})
	stopNode(t, n)

	restore := dropPackets(t, "ip daddr "+u.Hostname()+" tcp dport "+u.Port(), "ip saddr "+u.Hostname()+" tcp sport "+u.Port())
	began := time.Now()
	cached, logs := startLoggedNode(t, cfg, fastHooks)
	took := time.Since(began)
	t.Logf("started from the cache in %s with pg_timeout %s", took.Round(time.Millisecond), cfg.PgTimeout)
	t.Run("it serves the cache well before pg_timeout", func(t *testing.T) {
		if took > 3*time.Second {
			t.Errorf("the node took %s to start, want well under pg_timeout (%s)", took.Round(time.Millisecond), cfg.PgTimeout)
		}
		if err := serves(t, cached, "/cached"); err != nil {
			t.Error(err)
		}
		if src := statusOf(t, cached)["configuration_source"]; src != "cache" {
			t.Errorf("got configuration_source %v, want cache", src)
		}
	})
	t.Run("its log says why", func(t *testing.T) {
		if out := logs.String(); !strings.Contains(out, "serving the configuration cache until it answers") {
			t.Errorf("log lacks the cache line:\n%s", out)
		}
	})

	restore()
	t.Run("it switches to the database once packets flow", func(t *testing.T) {
		eventually(t, 20*time.Second, func() error {
			if src := statusOf(t, cached)["configuration_source"]; src != "database" {
				return fmt.Errorf("got configuration_source %v, want database", src)
			}
			return nil
		})
		mustAdmin(t, cached, 201, "POST", "/services/s/routes", `{"paths":["/after"]}`)
		eventually(t, 5*time.Second, func() error { return serves(t, cached, "/after") })
	})
}

// blackholeableDatabase is a PostgreSQL of the test's own whose packets a
// test may drop (it needs nftables): its DSN and that DSN parsed, for the
// address to cut.
func blackholeableDatabase(t *testing.T) (string, *url.URL) {
	t.Helper()
	needNft(t)
	_, dsn := ownDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return dsn, u
}
