package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/gossip"
)

// TestHintFloodIsReadByPolling floods a node with valid-looking hints
// from a gossip member, each naming a route that does not exist under an
// event id never committed. The node must not read the database once per
// hint (it read every hinted entity before, and rebuilt its snapshot for
// each window): windows naming many entities are read with one poll of
// cluster_events. And the hints must not change what it serves.
func TestHintFloodIsReadByPolling(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	n := startClusterNode(t, hostConfig(t, dsn, "127.0.74.11"), fastHooks)
	up := newUpstream(t)
	mustAdmin(t, n, 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`"}`)
	mustAdmin(t, n, 201, "POST", "/services/s/routes", `{"paths":["/kept"]}`)
	eventually(t, 3*time.Second, func() error { return serves(t, n, "/kept") })
	hash := n.ConfigHash()

	forger, err := gossip.Start(gossip.Config{NodeName: "forger", BindAddr: "127.0.74.12:7946", FastTimers: true,
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
		if n.applier.hintPolls.Load() == 0 {
			return fmt.Errorf("no window of hints was read by polling")
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // let the tail of the flood arrive
	reads := n.applier.entityReads.Load() - readsBefore
	t.Logf("%d forged hints: %d entities read one by one, %d windows read by one poll", hints, reads, n.applier.hintPolls.Load())
	if reads > hints/2 {
		t.Errorf("got %d entity reads for %d forged hints, want most windows read by one poll", reads, hints)
	}
	if err := serves(t, n, "/kept"); err != nil {
		t.Error(err)
	}
	if got := n.ConfigHash(); got != hash {
		t.Errorf("config hash %s after the flood, want %s unchanged", got, hash)
	}
}
