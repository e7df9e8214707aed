package node

import (
	"context"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/entity/declarative"
	"github.com/grapevine-gw/grapevine/store"
	"github.com/grapevine-gw/grapevine/store/memstore"
)

// TestImportLiveWithoutPolling: a whole import (what `grapevine config
// db_import` commits, from a process that is no gossip member) is served
// by a running node at once, though its polling is an hour away: the
// import's transaction notifies the nodes listening on PostgreSQL.
func TestImportLiveWithoutPolling(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	up := newUpstream(t)
	cfg := testConfig(t, dsn)
	cfg.DBUpdateFrequency = time.Hour
	n := startNode(t, cfg)
	if err := notServes(t, n, "/imported/x"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DSN: dsn, NodeID: "importer"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The listener may still be connecting just after start; an import
	// before its LISTEN is left to polling, so import (the same ids
	// again) until one is served.
	rows := importRows(t, routeDoc(up.URL, "/imported"))
	eventually(t, 10*time.Second, func() error {
		if _, err := st.UpsertAll(ctx, rows); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for {
			err := serves(t, n, "/imported/x")
			if err == nil || time.Now().After(deadline) {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// importRows is a declarative document as UpsertAll takes it.
func importRows(t *testing.T, doc string) []store.TableRows {
	t.Helper()
	cfg, err := declarative.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := memstore.Rows(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.TableRows
	for _, kd := range cfg.Kinds {
		out = append(out, store.TableRows{Table: store.TableOf(kd.Kind), Rows: rows[kd.Kind.Name()]})
	}
	return out
}
