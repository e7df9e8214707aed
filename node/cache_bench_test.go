package node

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/node/config"
	"github.com/grapevine-gw/grapevine/store"
)

// consumerRows are n consumers with a key-auth key each, documents shaped
// as scripts/bench-consumers loads them, beside one service and its route.
func consumerRows(n int) map[string][]store.Row {
	const now = 1764400000
	svc := "0b1d4c4e-5d0a-4a55-9f3f-0d7c4f1b2a11"
	rows := map[string][]store.Row{
		"services": {{ID: svc, Doc: json.RawMessage(fmt.Sprintf(`{"id":%q,"name":"s","host":"example.com","port":80,"protocol":"http"}`, svc))}},
		"routes":   {{ID: benchRouteID, Doc: benchRouteDoc(0)}},
	}
	for i := range n {
		cid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		kid := fmt.Sprintf("00000000-0000-4000-9000-%012d", i)
		rows["consumers"] = append(rows["consumers"], store.Row{ID: cid, Doc: json.RawMessage(fmt.Sprintf(
			`{"id":%q,"tags":null,"username":"c%d","custom_id":null,"created_at":%d,"updated_at":%d}`, cid, i, now, now))})
		rows["keyauth_credentials"] = append(rows["keyauth_credentials"], store.Row{ID: kid, Doc: json.RawMessage(fmt.Sprintf(
			`{"id":%q,"key":"k%d","tags":null,"consumer":{"id":%q},"created_at":%d}`, kid, i, cid, now))})
	}
	return rows
}

const benchRouteID = "0b1d4c4e-5d0a-4a55-9f3f-0d7c4f1b2a12"

func benchRouteDoc(i int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"id":%q,"name":"r","paths":["/r%d"],"protocols":["http","https"],"strip_path":true,"service":{"id":"0b1d4c4e-5d0a-4a55-9f3f-0d7c4f1b2a11"}}`, benchRouteID, i))
}

// BenchmarkCacheWriteRouteChange100kConsumers is what keeping the
// configuration cache costs after one route change while 100 000
// consumers with a key each are configured: the applier's hand-off and
// the writer's write, once the cache holds everything (issue 16).
func BenchmarkCacheWriteRouteChange100kConsumers(b *testing.B) {
	a := &applier{cacheCh: make(chan cacheContent, 1)}
	if err := a.replaceRows(consumerRows(100000)); err != nil {
		b.Fatal(err)
	}
	n := &Node{cfg: config.Config{Prefix: b.TempDir()}, name: "n1", applier: a, log: zerolog.Nop()}
	writeNow := func() {
		a.handOffCache()
		n.writeCache(<-a.cacheCh)
	}
	writeNow() // the whole configuration, as after the first load
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		key := entityKey{Table: "routes", ID: benchRouteID}
		doc := benchRouteDoc(i)
		if err := a.state.put(key.Table, store.Row{ID: key.ID, Doc: doc}); err != nil {
			b.Fatal(err)
		}
		a.setDoc(key, doc)
		a.markCacheDirty()
		writeNow()
	}
}

// BenchmarkCacheCompact100kConsumers is one compaction of the journal
// into a new base with 100 000 consumers with a key each: the old base
// streamed from disk and written again, what the writer spends once the
// journal outgrew a quarter of the base.
func BenchmarkCacheCompact100kConsumers(b *testing.B) {
	w := &cacheFiles{path: filepath.Join(b.TempDir(), cacheFileName)}
	defer w.closeJournal()
	var all []cacheLine
	for table, rows := range consumerRows(100000) {
		for _, r := range rows {
			all = append(all, cacheLine{Table: table, cachedRow: cachedRow{ID: r.ID, Doc: r.Doc}})
		}
	}
	meta := cacheMeta{Database: "db", ConfigHash: "h"}
	if _, err := w.write(meta, cacheContent{whole: true, put: all}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		route := cacheLine{Table: "routes", cachedRow: cachedRow{ID: benchRouteID, Doc: benchRouteDoc(i)}}
		if _, err := w.write(meta, cacheContent{put: []cacheLine{route}}); err != nil {
			b.Fatal(err)
		}
		if err := w.compact(); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(w.base.size)
	}
}

// BenchmarkCacheWriteWhole100kConsumers is the whole configuration
// written as a new base, as after a full load (start, db_cache_ttl, an
// import), with 100 000 consumers with a key each: the applier's
// hand-off and the writer's streamed write.
func BenchmarkCacheWriteWhole100kConsumers(b *testing.B) {
	a := &applier{cacheCh: make(chan cacheContent, 1)}
	if err := a.replaceRows(consumerRows(100000)); err != nil {
		b.Fatal(err)
	}
	n := &Node{cfg: config.Config{Prefix: b.TempDir()}, name: "n1", applier: a, log: zerolog.Nop()}
	defer func() { n.cacheFiles.closeJournal() }()
	b.ReportAllocs()
	for b.Loop() {
		a.cacheWhole = true
		a.handOffCache()
		n.writeCache(<-a.cacheCh)
	}
}
