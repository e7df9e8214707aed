package node

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/internal/pgtest"
	"github.com/grapevine-gw/grapevine/internal/testutil"
	"github.com/grapevine-gw/grapevine/node/config"
	"github.com/grapevine-gw/grapevine/store"
)

// Resilience tests run on 127.0.70.x against a PostgreSQL server of their
// own, which they stop (as `pg_ctl stop -m immediate` does) and start.

// ownDatabase starts a server of the test's own with a bootstrapped
// database.
func ownDatabase(t *testing.T) (*pgtest.OwnServer, string) {
	t.Helper()
	srv := pgtest.NewOwnServer(t)
	dsn := srv.NewDatabase(t, "grapevine")
	st, err := store.Open(context.Background(), store.Config{DSN: dsn})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	defer st.Close()
	if err := st.Bootstrap(context.Background()); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return srv, dsn
}

// resilConfig is a node on host with Kong's port numbers, a short
// pg_timeout and its own prefix.
func resilConfig(t *testing.T, dsn, host, prefix string) config.Config {
	cfg := testConfig(t, dsn)
	cfg.ProxyListen = []string{host + ":8000"}
	cfg.AdminListen = []string{host + ":8001"}
	cfg.ClusterListen = host + ":7946"
	cfg.DBUpdateFrequency = time.Second
	cfg.PgTimeout = time.Second
	cfg.Prefix = prefix
	return cfg
}

// statusOf reads GET /status.
func statusOf(t *testing.T, n *Node) map[string]any {
	t.Helper()
	return mustAdmin(t, n, 200, "GET", "/status", "")
}

func TestNodeStartsFromItsCacheWithoutTheDatabase(t *testing.T) {
	srv, dsn := ownDatabase(t)
	up := newUpstream(t)
	a := startClusterNode(t, resilConfig(t, dsn, "127.0.70.1", t.TempDir()), fastHooks)
	bCfg := resilConfig(t, dsn, "127.0.70.2", t.TempDir())
	b := startClusterNode(t, bCfg, fastHooks)
	cachePath := filepath.Join(bCfg.Prefix, cacheFileName)
	journalPath := cachePath + cacheJournalSuffix
	// B writes its whole (empty) configuration as a base after its start;
	// the changes after it go to the journal, replayed when B restarts.
	eventually(t, 5*time.Second, func() error {
		_, err := os.Stat(journalPath)
		return err
	})
	emptyJournal, err := os.ReadFile(journalPath)
	if err != nil {
		t.Fatal(err)
	}
	mustAdmin(t, a, 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`"}`)
	mustAdmin(t, a, 201, "POST", "/services/s/routes", `{"paths":["/before"]}`)
	eventually(t, 5*time.Second, func() error { return serves(t, b, "/before") })
	servedHash := b.ConfigHash()
	eventually(t, 5*time.Second, func() error {
		body, err := readCache(cachePath, b.databaseID())
		if err != nil || body.ConfigHash != b.ConfigHash() {
			return fmt.Errorf("node B's cache: got hash %q (%v), want %q", body.ConfigHash, err, b.ConfigHash())
		}
		return nil
	})
	if journal, err := os.ReadFile(journalPath); err != nil || !bytes.HasPrefix(journal, emptyJournal) || len(journal) == len(emptyJournal) {
		t.Fatalf("node B's journal: got %d bytes (%v), want records after the %d bytes it started with", len(journal), err, len(emptyJournal))
	}
	stopNode(t, b)

	// A change B misses while it is down, then the database goes.
	mustAdmin(t, a, 201, "POST", "/services/s/routes", `{"paths":["/missed"]}`)
	srv.Stop(t)

	b2, logs := startLoggedNode(t, bCfg, fastHooks)
	t.Run("it serves the cached configuration", func(t *testing.T) {
		if err := serves(t, b2, "/before"); err != nil {
			t.Fatal(err)
		}
		if err := notServes(t, b2, "/missed"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("its log says so", func(t *testing.T) {
		if out := logs.String(); !strings.Contains(out, "serving the configuration cache until it answers") ||
			!strings.Contains(out, cachePath) {
			t.Fatalf("log lacks the cache line naming %s:\n%s", cachePath, out)
		}
	})
	t.Run("its status says so", func(t *testing.T) {
		st := statusOf(t, b2)
		db, _ := st["database"].(map[string]any)
		if st["configuration_source"] != "cache" || db["reachable"] != false {
			t.Fatalf("got configuration_source %v, database %v; want cache, unreachable", st["configuration_source"], db)
		}
		if st["configuration_hash"] != b2.ConfigHash() || b2.ConfigHash() == "" {
			t.Fatalf("got configuration_hash %v, want %q", st["configuration_hash"], b2.ConfigHash())
		}
		// The same configuration gives the same hash, read from the
		// database or from the cache: peers must not see a difference.
		if b2.ConfigHash() != servedHash {
			t.Fatalf("serving its cache node B publishes hash %s, before its restart %s", b2.ConfigHash(), servedHash)
		}
		if age, ok := st["configuration_age_seconds"].(float64); !ok || age < 0 {
			t.Fatalf("got configuration_age_seconds %v, want a number", st["configuration_age_seconds"])
		}
	})
	t.Run("it joins gossip without the registry", func(t *testing.T) {
		eventually(t, 10*time.Second, func() error {
			if alive := b2.aliveMembers(); alive != 2 {
				return fmt.Errorf("node B sees %d alive members, want 2", alive)
			}
			return nil
		})
	})
	t.Run("writes answer 503 meanwhile", func(t *testing.T) {
		status, body := adminDo(t, b2, "POST", "/services", `{"name":"x","url":"http://127.0.0.1:1"}`)
		if status != 503 || body["message"] == nil {
			t.Fatalf("got %d %v, want 503 with a message", status, body)
		}
	})

	srv.Start(t)
	t.Run("it switches to the database and catches up", func(t *testing.T) {
		eventually(t, 10*time.Second, func() error { return serves(t, b2, "/missed") })
		eventually(t, 5*time.Second, func() error {
			if src := statusOf(t, b2)["configuration_source"]; src != "database" {
				return fmt.Errorf("got configuration_source %v, want database", src)
			}
			if b2.ConfigHash() != a.ConfigHash() {
				return fmt.Errorf("node B serves hash %s, node A %s", b2.ConfigHash(), a.ConfigHash())
			}
			return nil
		})
		mustAdmin(t, b2, 201, "POST", "/services/s/routes", `{"paths":["/after"]}`)
		eventually(t, 5*time.Second, func() error { return serves(t, a, "/after") })
	})
}

// TestNodeRefusesABadCacheAndWaitsForTheDatabase starts a node whose
// cache was cut short while the database is down: it must not serve that
// file, must say why it waits, and must start once the database answers.
func TestNodeRefusesABadCacheAndWaitsForTheDatabase(t *testing.T) {
	srv, dsn := ownDatabase(t)
	up := newUpstream(t)
	cfg := resilConfig(t, dsn, "127.0.70.5", t.TempDir())
	cfg.ClusterListen = ""
	first := startNode(t, cfg)
	mustAdmin(t, first, 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`"}`)
	mustAdmin(t, first, 201, "POST", "/services/s/routes", `{"paths":["/r"]}`)
	stopNode(t, first) // writes the cache at shutdown
	cachePath := filepath.Join(cfg.Prefix, cacheFileName)
	data, err := os.ReadFile(cachePath)
	if err != nil {
		t.Fatalf("no cache after shutdown: %v", err)
	}
	if err := os.WriteFile(cachePath, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	srv.Stop(t)

	logs := &testutil.LogBuffer{}
	n := New(cfg, zerolog.New(logs).Level(zerolog.WarnLevel))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- n.Start(ctx) }()
	t.Cleanup(func() { stopNode(t, n) })

	eventually(t, 10*time.Second, func() error {
		if strings.Count(logs.String(), "not serving yet") < 2 {
			return fmt.Errorf("no repeated 'not serving yet' line yet:\n%s", logs.String())
		}
		return nil
	})
	out := logs.String()
	if !strings.Contains(out, "the configuration cache is not served") || !strings.Contains(out, "truncated or extended") {
		t.Errorf("log lacks the refusal naming the truncation:\n%s", out)
	}
	if conn, err := net.Dial("tcp", "127.0.70.5:8000"); err == nil {
		conn.Close()
		t.Errorf("the proxy port accepts connections while nothing can be served")
	}
	select {
	case err := <-started:
		t.Fatalf("Start returned %v while the database is down, want it to keep waiting", err)
	default:
	}

	srv.Start(t)
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("Start after the database came back: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Start did not return after the database came back")
	}
	if err := serves(t, n, "/r"); err != nil {
		t.Fatal(err)
	}
}
