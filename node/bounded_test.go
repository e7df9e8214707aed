package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/internal/testutil"
	"github.com/grapevine-gw/grapevine/node/config"
)

// startLoggedNode starts a node whose log the test can read.
func startLoggedNode(t *testing.T, cfg config.Config, hooks TestHooks) (*Node, *testutil.LogBuffer) {
	t.Helper()
	logs := &testutil.LogBuffer{}
	w := io.MultiWriter(logs, zerolog.NewTestWriter(t))
	n := New(cfg, zerolog.New(w).Level(zerolog.WarnLevel))
	n.SetTestHooks(hooks)
	if err := n.Start(context.Background()); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	t.Cleanup(func() { stopNode(t, n) })
	return n, logs
}

func TestApplierPanicIsLoggedAndTheApplierRestarts(t *testing.T) {
	var panics atomic.Int32
	hooks := TestHooks{BeforeApplyForTest: func() {
		if panics.Add(1) == 1 {
			panic("injected applier panic")
		}
	}}
	n, logs := startLoggedNode(t, testConfig(t, bootstrappedDatabase(t)), hooks)
	up := newUpstream(t)

	// The first write's batch panics: it is committed all the same.
	mustAdmin(t, n, 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`"}`)
	mustAdmin(t, n, 201, "POST", "/services/s/routes", `{"paths":["/after-panic"]}`)
	eventually(t, 5*time.Second, func() error { return serves(t, n, "/after-panic") })

	out := logs.String()
	for _, want := range []string{
		`"panic":"injected applier panic"`,
		`"goroutine":"applier"`,
		`node.(*applier).apply`, // the stack names where it panicked
		`restarting the background goroutine after its panic`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if !strings.Contains(out, `"level":"error"`) {
		t.Errorf("got no error-level line for the panic:\n%s", out)
	}
}

// pgRelay passes TCP connections from its own address through to the test
// PostgreSQL, so one node's database traffic has an address of its own
// that nftables can cut while the other nodes keep theirs. (pgtest's
// server trusts only 127.0.0.1, so the node cannot simply dial it from
// its own loopback address.)
type pgRelay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startPgRelay(t *testing.T, host, target string) *pgRelay {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	r := &pgRelay{ln: ln, target: target}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.close)
	return r
}

func (r *pgRelay) accept() {
	defer r.wg.Done()
	for {
		client, err := r.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", r.target)
		if err != nil {
			client.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, client, server)
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pipe(client, server)
		go r.pipe(server, client)
	}
}

func (r *pgRelay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (r *pgRelay) close() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// databaseReachable reads GET /status's database.reachable.
func databaseReachable(t *testing.T, n *Node) bool {
	t.Helper()
	status, body := adminDo(t, n, "GET", "/status", "")
	if status != 200 {
		t.Fatalf("GET /status: got %d %v, want 200", status, body)
	}
	db, _ := body["database"].(map[string]any)
	return db["reachable"] == true
}

// TestDatabaseCutOffDoesNotStallTheApplier drops node B's packets to and
// from PostgreSQL (no reset, no refusal: the database just stops
// answering). B's applier must keep turning, each call ending at its
// pg_timeout deadline, B's /status must say the database is unreachable,
// and the writes made on A meanwhile must arrive once the cut ends.
func TestDatabaseCutOffDoesNotStallTheApplier(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	a := startClusterNode(t, clusterConfig(t, dsn), fastHooks)
	bCfg := clusterConfig(t, dsn)
	bHost, _ := splitAddr(t, bCfg.ClusterListen)
	relay := startPgRelay(t, bHost, fmt.Sprintf("%s:%d", bCfg.PgHost, bCfg.PgPort))
	relayHost, relayPort := splitAddr(t, relay.ln.Addr().String())
	bCfg.PgHost = relayHost
	fmt.Sscanf(relayPort, "%d", &bCfg.PgPort)
	bCfg.PgTimeout = time.Second
	b, bLogs := startLoggedNode(t, bCfg, fastHooks)
	eventually(t, 10*time.Second, func() error {
		if alive := b.aliveMembers(); alive != 2 {
			return fmt.Errorf("node B sees %d alive members, want 2", alive)
		}
		return nil
	})
	up := newUpstream(t)
	mustAdmin(t, a, 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`"}`)
	mustAdmin(t, a, 201, "POST", "/services/s/routes", `{"paths":["/before"]}`)
	eventually(t, 3*time.Second, func() error { return serves(t, b, "/before") })

	restore := cutTraffic(t, relay.ln.Addr().String())
	failuresBefore := applierFailures(bLogs.String())
	mustAdmin(t, a, 201, "POST", "/services/s/routes", `{"paths":["/during"]}`)
	eventually(t, 10*time.Second, func() error {
		if databaseReachable(t, b) {
			return fmt.Errorf("node B's /status says the database is reachable while it is cut off")
		}
		return nil
	})
	// Each failed call is the applier coming back from a deadline; two of
	// them mean it went round its loop again rather than hanging in a read.
	eventually(t, 10*time.Second, func() error {
		if got := applierFailures(bLogs.String()) - failuresBefore; got < 2 {
			return fmt.Errorf("node B's applier reported %d failed database calls during the cut, want at least 2", got)
		}
		return nil
	})
	if err := serves(t, b, "/before"); err != nil {
		t.Errorf("node B stopped serving its last configuration during the cut: %v", err)
	}

	restore()
	eventually(t, 10*time.Second, func() error { return serves(t, b, "/during") })
	eventually(t, 5*time.Second, func() error {
		if !databaseReachable(t, b) {
			return fmt.Errorf("node B's /status says the database is unreachable after the cut ended")
		}
		return nil
	})
}

// applierFailures counts the applier's reports of a failed database call.
func applierFailures(log string) int {
	return strings.Count(log, "polling cluster_events failed") + strings.Count(log, "applying changes failed") +
		strings.Count(log, "full reload failed")
}
