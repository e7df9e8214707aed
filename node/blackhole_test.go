package node

import (
	"fmt"
	"net/url"
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
	needNft(t)
	_, dsn := ownDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
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
