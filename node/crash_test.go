package node

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/node/config"
	"github.com/grapevine-gw/grapevine/store"
)

// hostConfig is clusterConfig on a fixed loopback host (127.0.90.1x: the
// crash tests' range).
func hostConfig(t *testing.T, dsn, host string) config.Config {
	cfg := clusterConfig(t, dsn)
	cfg.ProxyListen = []string{host + ":8000"}
	cfg.AdminListen = []string{host + ":8001"}
	cfg.ClusterListen = host + ":7946"
	return cfg
}

// TestCommitWithoutHintIsPolled is a node that dies between its database
// commit and its gossip hint: the hint never comes, so the others must
// find the change by polling cluster_events, within db_update_frequency
// + 1 s, and end up with the configuration hash of the database (that of
// a node that loads everything from it afterwards). Anti-entropy is held
// off on the survivors so that polling alone can deliver.
func TestCommitWithoutHintIsPolled(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	survivorHooks := fastHooks
	survivorHooks.DriftBound = time.Hour
	a := startClusterNode(t, hostConfig(t, dsn, "127.0.90.11"), survivorHooks)
	b := startClusterNode(t, hostConfig(t, dsn, "127.0.90.12"), survivorHooks)

	committed := make(chan store.Change, 1)
	dead := make(chan struct{}) // closed at the end: the dying node may finish
	writerHooks := fastHooks
	writerHooks.BeforeHintForTest = func(c store.Change) {
		select {
		case committed <- c:
		default:
		}
		<-dead
	}
	w := startClusterNode(t, hostConfig(t, dsn, "127.0.90.13"), writerHooks)
	t.Cleanup(func() { close(dead) }) // runs before w is stopped
	for _, n := range []*Node{a, b, w} {
		eventually(t, 10*time.Second, func() error { return allAlive(n, 3) })
	}
	up := newUpstream(t)
	mustAdmin(t, a, 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`"}`)
	eventually(t, 3*time.Second, func() error { return agreed(t, a) })

	// The writer commits, then hangs where it would send the hint: its
	// client never gets an answer, as with a node killed there.
	go func() {
		client := &http.Client{Timeout: 30 * time.Second}
		resp, err := client.Post("http://"+w.cfg.AdminListen[0]+"/services/s/routes", "application/json",
			strings.NewReader(`{"paths":["/unhinted"]}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	var change store.Change
	select {
	case change = <-committed:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer did not commit the route")
	}
	bound := a.cfg.DBUpdateFrequency + time.Second
	for _, n := range []*Node{a, b} {
		eventually(t, bound, func() error { return serves(t, n, "/unhinted") })
	}
	t.Logf("event %d of %s reached both survivors by polling within %s", change.EventID, change.Table, bound)

	witness := startClusterNode(t, hostConfig(t, dsn, "127.0.90.14"), fastHooks)
	want := witness.ConfigHash()
	for _, n := range []*Node{a, b} {
		if got := n.ConfigHash(); got != want {
			t.Errorf("%s serves hash %s, want the database's %s", n.Name(), got, want)
		}
	}
}

// allAlive says whether n sees want members alive.
func allAlive(n *Node, want int) error {
	if alive := n.aliveMembers(); alive != want {
		return fmt.Errorf("%s sees %d alive members, want %d", n.Name(), alive, want)
	}
	return nil
}
