package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/entity/declarative"
	"github.com/grapevine-gw/grapevine/store"
)

// importDoc parses doc and upserts it as `grapevine config db_import` does,
// through a store of its own: the node hears of it only by polling.
func importDoc(t *testing.T, dsn, doc string) {
	t.Helper()
	cfg, err := declarative.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	var data []store.TableRows
	for _, kd := range cfg.Kinds {
		tr := store.TableRows{Table: store.TableOf(kd.Kind)}
		for _, d := range kd.Docs {
			row, err := store.RowOf(kd.Kind, d)
			if err != nil {
				t.Fatal(err)
			}
			tr.Rows = append(tr.Rows, row)
		}
		data = append(data, tr)
	}
	st, err := store.Open(context.Background(), store.Config{DSN: dsn, NodeID: "importer"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.UpsertAll(context.Background(), data); err != nil {
		t.Fatalf("import: %v", err)
	}
}

// TestImportGoesLiveThroughOneReloadEvent: an import records a single
// cluster event (store.ReloadAllTable), not one per row; a node that
// polls it reloads the whole configuration and serves every imported
// route.
func TestImportGoesLiveThroughOneReloadEvent(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	cfg := testConfig(t, dsn)
	cfg.DBUpdateFrequency = 50 * time.Millisecond
	n := startNode(t, cfg)
	up := newUpstream(t)

	var b strings.Builder
	b.WriteString("_format_version: \"3.0\"\nservices:\n")
	for i := range 20 {
		fmt.Fprintf(&b, "- name: s%d\n  url: %s\n  routes:\n  - paths: [/r%d]\n", i, up.URL, i)
	}
	importDoc(t, dsn, b.String())
	for _, path := range []string{"/r0/x", "/r19/x"} {
		eventually(t, 10*time.Second, func() error {
			if status, body := proxyGet(t, n, path); status != 200 {
				return fmt.Errorf("GET %s: got %d %q, want 200", path, status, body)
			}
			return nil
		})
	}
	if events := readEvents(t, dsn); len(events) != 1 || events[0].Table != store.ReloadAllTable {
		t.Errorf("got events %+v, want the one reload event", events)
	}
}
