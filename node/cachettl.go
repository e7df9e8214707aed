package node

import (
	"encoding/json"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/store"
)

// A key-auth credential written with a ttl keeps its expiry in the
// configuration cache, so a node serving its cache refuses the key once
// it expires, as it does with the database. The cached document holds
// "ttl" as the Unix time the row expires (store.ExportDoc, Kong's export
// form), not the seconds left when it was read, which would mean nothing
// by the time the cache is served.

// cachedDoc is a row's document as the cache keeps it.
func cachedDoc(table string, row store.Row) json.RawMessage {
	return cachedDocOf(table)(row)
}

// cachedDocOf is cachedDoc for the rows of table, which a full reload
// calls for every row: the table is built once (store.TableOf), not for
// each row.
func cachedDocOf(table string) func(store.Row) json.RawMessage {
	k, ok := ttlKind(table)
	if !ok {
		return func(row store.Row) json.RawMessage { return row.Doc }
	}
	t := store.TableOf(k)
	return func(row store.Row) json.RawMessage { return store.ExportDoc(t, row) }
}

// ttlKind is table's kind when its rows may expire. cachedDoc and
// cachedRowOf run for every row of a full reload or a cache load, so this
// asks the kind's schema: building the store.Table (store.TableByName)
// for every row cost more than the rest of the call.
func ttlKind(table string) (*entity.Kind, bool) {
	k, ok := entity.KindByName(table)
	return k, ok && k.Schema.TTL
}

// cachedRowOf is a cached entity as a read from the database returns it:
// with its expiry, and "ttl" as the seconds left now. A version 1 cache
// kept no expiry; its rows have none.
func cachedRowOf(table string, r cachedRow, version int) store.Row {
	row := store.Row{ID: r.ID, Doc: r.Doc}
	if _, ok := ttlKind(table); !ok || version < 2 {
		return row
	}
	row.Doc, row.Expires = store.FromExportDoc(r.Doc, time.Now())
	return row
}
