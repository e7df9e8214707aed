package node

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// load sends requests to path through every node's proxy from a few
// keep-alive clients, without retries, until stopped; it counts what was
// sent and what failed (an error or any status but 200).
type load struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	firstErrors  []string
	stop         chan struct{}
	wg           sync.WaitGroup
	proxies      int
}

func startLoad(t *testing.T, nodes []*Node, path string) *load {
	l := &load{stop: make(chan struct{}), proxies: len(nodes)}
	for _, n := range nodes {
		url := "http://" + n.ProxyAddr().String() + path
		for range 2 {
			l.wg.Add(1)
			go l.run(url)
		}
	}
	t.Cleanup(l.end)
	return l
}

func (l *load) run(url string) {
	defer l.wg.Done()
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		l.sent.Add(1)
		resp, err := client.Get(url)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			l.failed.Add(1)
			l.mu.Lock()
			if len(l.firstErrors) < 5 {
				l.firstErrors = append(l.firstErrors, url+": "+err.Error())
			}
			l.mu.Unlock()
		}
		time.Sleep(2 * time.Millisecond) // bounded load: the machine is shared
	}
}

func (l *load) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// endWithoutFailures ends the load and fails the test if any request of
// it failed.
func (l *load) endWithoutFailures(t *testing.T) {
	t.Helper()
	l.end()
	t.Logf("load through %d proxies: %d requests sent, %d failed", l.proxies, l.sent.Load(), l.failed.Load())
	if l.failed.Load() != 0 {
		t.Fatalf("got %d failed requests of %d (first: %v), want 0", l.failed.Load(), l.sent.Load(), l.firstErrors)
	}
}

// takeWritesAgain waits until every node's /status says the database is
// reachable, then checks a write on the last node is served by all.
func takeWritesAgain(t *testing.T, nodes []*Node, within time.Duration) {
	t.Helper()
	eventually(t, within, func() error {
		for _, n := range nodes {
			if !databaseReachable(t, n) {
				return fmt.Errorf("%s: /status says the database is unreachable after it came back", n.Name())
			}
		}
		return nil
	})
	mustAdmin(t, nodes[len(nodes)-1], 201, "POST", "/services/s/routes", `{"paths":["/after"]}`)
	for _, n := range nodes {
		eventually(t, 5*time.Second, func() error { return serves(t, n, "/after") })
	}
}

// TestDatabaseOutageUnderLoad stops PostgreSQL (immediate shutdown) under
// load through three nodes: every request must still be served, writes
// must answer 503 with Kong's {"message"} body well before pg_timeout,
// /status must say the database is unreachable, and once it is back the
// nodes must take writes and serve them with no restart.
func TestDatabaseOutageUnderLoad(t *testing.T) {
	srv, dsn := ownDatabase(t)
	up := newUpstream(t)
	var nodes []*Node
	for i := 1; i <= 3; i++ {
		cfg := resilConfig(t, dsn, fmt.Sprintf("127.0.70.%d", 10+i), t.TempDir())
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

	srv.Stop(t)
	stoppedAt := time.Now()
	t.Run("writes answer 503 at once", func(t *testing.T) {
		for _, n := range nodes {
			began := time.Now()
			status, body := adminDo(t, n, "POST", "/services/s/routes", `{"paths":["/during"]}`)
			took := time.Since(began)
			if status != 503 || body["message"] != "database unavailable" {
				t.Errorf("%s: got %d %v, want 503 {\"message\":\"database unavailable\"}", n.Name(), status, body)
			}
			if took > 2*time.Second {
				t.Errorf("%s: the write took %s, want an answer well before pg_timeout (5s)", n.Name(), took)
			}
		}
	})
	t.Run("reads of the database say so", func(t *testing.T) {
		if status, body := adminDo(t, nodes[1], "GET", "/services", ""); status != 503 || body["message"] == nil {
			t.Errorf("GET /services: got %d %v, want 503 with a message", status, body)
		}
	})
	t.Run("status says the database is unreachable", func(t *testing.T) {
		for _, n := range nodes {
			if databaseReachable(t, n) {
				t.Errorf("%s: /status says the database is reachable while it is stopped", n.Name())
			}
		}
	})
	t.Run("the cluster view still answers from gossip", func(t *testing.T) {
		status, body := adminDo(t, nodes[2], "GET", "/cluster", "")
		if data, _ := body["data"].([]any); status != 200 || len(data) != 3 {
			t.Errorf("GET /cluster: got %d %v, want 200 with the 3 nodes", status, body)
		}
	})
	time.Sleep(time.Until(stoppedAt.Add(3 * time.Second))) // a few seconds of outage under load

	srv.Start(t)
	t.Run("nodes reconnect and take writes with no restart", func(t *testing.T) {
		takeWritesAgain(t, nodes, 10*time.Second)
	})
	l.endWithoutFailures(t)
}
