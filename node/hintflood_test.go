package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/gossip"
)

// TestHintFloodIsReadByPolling floods a node with valid-looking hints
// from a gossip member, each naming a route that does not exist under an
// event id never committed. The node must not read an entity for any of
// them (it read every hinted entity before, and rebuilt its snapshot for
// each window): a window's hints are checked against cluster_events with
// one read, and windows naming many entities are read with one poll. And
// the hints must not change what it serves.
func TestHintFloodIsReadByPolling(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	n := startClusterNode(t, hostConfig(t, dsn, "127.0.74.11"), fastHooks)
	up := newUpstream(t)
	mustAdmin(t, n, 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`"}`)
	mustAdmin(t, n, 201, "POST", "/services/s/routes", `{"paths":["/kept"]}`)
	eventually(t, 3*time.Second, func() error { return serves(t, n, "/kept") })
	hash := n.ConfigHash()
	forger := startForger(t, n, "127.0.74.12:7946")

	readsBefore := n.applier.entityReads.Load()
	began := time.Now()
	const hints = 400
	for i := range hints {
		h := gossip.Hint{EventID: int64(1_000_000 + i), Table: "routes", ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Op: "update", Origin: "forger"}
		if err := forger.Broadcast(h); err != nil {
			t.Fatalf("broadcasting hint %d: %v", i, err)
		}
	}
	t.Logf("broadcast %d hints in %s", hints, time.Since(began).Round(time.Millisecond))
	eventually(t, 5*time.Second, func() error {
		if n.applier.hintPolls.Load() == 0 && n.applier.hintsRefused.Load() == 0 {
			return fmt.Errorf("no window of hints was checked or polled yet")
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // let the tail of the flood arrive
	reads := n.applier.entityReads.Load() - readsBefore
	t.Logf("%d forged hints: %d entities read, %d refused by their check, %d windows read by one poll",
		hints, reads, n.applier.hintsRefused.Load(), n.applier.hintPolls.Load())
	if reads != 0 {
		t.Errorf("got %d entity reads for %d forged hints, want none: their events do not exist", reads, hints)
	}
	if err := serves(t, n, "/kept"); err != nil {
		t.Error(err)
	}
	if got := n.ConfigHash(); got != hash {
		t.Errorf("config hash %s after the flood, want %s unchanged", got, hash)
	}
}

// A forged hint naming a real route under the next event id must not make
// the node skip the real change that later gets that id. Before hints were
// checked against cluster_events, the node re-read the route (unchanged
// yet), recorded the id as applied, and then skipped the real update of
// that id: the node served the old route until a full reload.
func TestForgedHintCannotHideALaterChange(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	hooks := fastHooks
	hooks.DriftBound = time.Hour // no anti-entropy: it would repair what the hint broke, seconds later
	n := startClusterNode(t, hostConfig(t, dsn, "127.0.74.13"), hooks)
	up := newUpstream(t)
	mustAdmin(t, n, 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`"}`)
	route := mustAdmin(t, n, 201, "POST", "/services/s/routes", `{"name":"r","paths":["/before"]}`)
	eventually(t, 3*time.Second, func() error { return serves(t, n, "/before") })
	forger := startForger(t, n, "127.0.74.14:7946")

	next := latestEventID(t, n) + 1
	forged := gossip.Hint{EventID: next, Table: "routes", ID: route["id"].(string), Op: "update", Origin: "forger"}
	if err := forger.Broadcast(forged); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		if n.applier.hintsRefused.Load() == 0 {
			return fmt.Errorf("the forged hint for event %d was not refused yet", next)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // the hint's gossip retransmissions settle
	mustAdmin(t, n, 200, "PATCH", "/routes/r", `{"paths":["/after"]}`)
	if got := latestEventID(t, n); got != next {
		t.Fatalf("the update got event %d, want %d (the forged hint's)", got, next)
	}
	eventually(t, 3*time.Second, func() error { return serves(t, n, "/after") })
}

// startForger starts a gossip member at addr that joins n, as a peer
// sending hints of its own making would.
func startForger(t *testing.T, n *Node, addr string) *gossip.Cluster {
	t.Helper()
	forger, err := gossip.Start(gossip.Config{NodeName: "forger", BindAddr: addr, FastTimers: true,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = forger.Shutdown() })
	if _, err := forger.Join([]string{n.clusterAddr}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		if alive := n.aliveMembers(); alive != 2 {
			return fmt.Errorf("the node sees %d alive members, want 2", alive)
		}
		return nil
	})
	return forger
}

func latestEventID(t *testing.T, n *Node) int64 {
	t.Helper()
	id, err := n.store.LatestEventID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return id
}
