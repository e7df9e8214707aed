package node

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/entity/declarative"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/store"
	"github.com/grapevine-gw/grapevine/store/memstore"
)

// BenchmarkFullReload is one full reload of the configuration scripts/
// bench-import loads (per service: a service, a route, a key-auth plugin,
// a consumer and its key): the database read, decoding, the credential
// index, the hash and the first snapshot (applier.loadAll). Profile it
// with -cpuprofile; -benchtime 3x is plenty.
func BenchmarkFullReload(b *testing.B) {
	const services = 10000
	dsn := bootstrappedDatabase(b)
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DSN: dsn})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.UpsertAll(ctx, benchImportRows(b, services)); err != nil {
		b.Fatal(err)
	}
	n := New(testConfig(b, dsn), zerolog.Nop())
	n.store = st
	n.proxy = proxy.New(proxy.DefaultConfig())
	n.applier = n.newApplier()
	b.ReportAllocs()
	for b.Loop() {
		if err := n.applier.loadAll(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// benchImportRows is scripts/bench-import's document as the store's rows.
func benchImportRows(b testing.TB, services int) []store.TableRows {
	var doc strings.Builder
	doc.WriteString("_format_version: \"3.0\"\nservices:\n")
	for i := range services {
		fmt.Fprintf(&doc, "- name: s%d\n  url: http://127.0.0.1:9\n  routes:\n  - name: r%d\n    paths: [/s%d]\n  plugins:\n  - name: key-auth\n", i, i, i)
	}
	doc.WriteString("consumers:\n")
	for i := range services {
		fmt.Fprintf(&doc, "- username: c%d\n  keyauth_credentials:\n  - key: k%d\n", i, i)
	}
	cfg, err := declarative.Parse([]byte(doc.String()))
	if err != nil {
		b.Fatal(err)
	}
	rows, err := memstore.Rows(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var out []store.TableRows
	for _, kd := range cfg.Kinds {
		out = append(out, store.TableRows{Table: store.TableOf(kd.Kind), Rows: rows[kd.Kind.Name()]})
	}
	return out
}
