package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
)

// takeTTL returns doc without the "ttl" a validated write of a TTL table
// carries (entity.Schema.TTL), and the expiry it asks for: the seconds
// after the entity's created_at, as Kong's get_ttl_value for an insert
// (a PATCH computes its own from the time of the update), or the time
// itself for an entity.Expiry (a declarative file's). The document given
// is not changed.
func takeTTL(t Table, doc map[string]any) (map[string]any, *time.Time) {
	v, ok := doc["ttl"]
	if !ok || !t.TTL {
		return doc, nil
	}
	out := make(map[string]any, len(doc))
	for k, x := range doc {
		if k != "ttl" {
			out[k] = x
		}
	}
	if at, ok := v.(entity.Expiry); ok {
		expires := time.Unix(int64(at), 0)
		return out, &expires
	}
	ttl, _ := v.(int64)
	created := time.Now()
	if c := seconds(doc["created_at"]); c > 0 {
		created = time.Unix(c, 0)
	}
	return out, ExpiresAfter(created, ttl)
}

// deleteExpiredSQL deletes a TTL table's expired rows (Kong's cleanup
// statement in kong/db/strategies/postgres/connector.lua). Deleting them
// records no cluster_events row: every read already leaves them out, and
// each node forgets an expired credential by its own clock.
func (t Table) deleteExpiredSQL() string {
	return "DELETE FROM " + t.ident() + " WHERE ttl < now()"
}

// clearExpired deletes t's expired rows before a write within the
// transaction, so that a key nobody can see any more (its row waits for
// the cleanup) does not refuse a new entity with the same key; Kong
// answers 409 there until its cleanup timer has run.
func (x *Tx) clearExpired(ctx context.Context, t Table) error {
	if !t.TTL {
		return nil
	}
	if _, err := x.tx.Exec(ctx, t.deleteExpiredSQL()); err != nil {
		return fmt.Errorf("delete expired %s: %w", t.Name, classify(err))
	}
	return nil
}

// DeleteExpired deletes the expired rows of every TTL table, as Kong's
// ttl cleanup timer does, and returns how many it deleted.
func (s *Store) DeleteExpired(ctx context.Context) (int64, error) {
	var n int64
	for _, t := range Tables() {
		if !t.TTL {
			continue
		}
		tag, err := s.pool.Exec(ctx, t.deleteExpiredSQL())
		if err != nil {
			return n, fmt.Errorf("delete expired %s: %w", t.Name, classify(err))
		}
		n += tag.RowsAffected()
	}
	return n, nil
}

// ExportDoc is a row's document as Kong's export writes it: for a TTL
// table "ttl" is the Unix second the row expires (null for never), not
// the seconds left a read renders (select_for_export_expressions in
// kong/db/strategies/postgres/init.lua), so that importing the file
// restores the same expiry however long after it is imported.
func ExportDoc(t Table, r Row) json.RawMessage {
	if !t.TTL {
		return r.Doc
	}
	if r.Expires == nil && (bytes.HasPrefix(r.Doc, []byte(`{"ttl":null,`)) || string(r.Doc) == `{"ttl":null}`) {
		return r.Doc // as read without an expiry: already its export form
	}
	value := "null"
	if r.Expires != nil {
		value = strconv.FormatInt(r.Expires.Unix(), 10)
	}
	return withTTLValue(withoutTTL(r.Doc), value)
}

// ExportDocs is ExportDoc of every row, by table name, as an export
// (declarative.Export) takes them.
func ExportDocs(rows map[string][]Row) map[string][]json.RawMessage {
	docs := make(map[string][]json.RawMessage, len(rows))
	for table, list := range rows {
		t, _ := TableByName(table)
		out := make([]json.RawMessage, len(list))
		for i, r := range list {
			out[i] = ExportDoc(t, r)
		}
		docs[table] = out
	}
	return docs
}

// withoutTTL undoes WithTTL: the document without the "ttl" member a read
// put first.
func withoutTTL(doc json.RawMessage) json.RawMessage {
	_, rest, _ := cutTTL(doc)
	return rest
}

// cutTTL splits the "ttl" member WithTTL (or ExportDoc) put first off
// doc: its value's text and the document without it. ok is false, and
// rest is doc, when doc does not start with one.
func cutTTL(doc json.RawMessage) (value []byte, rest json.RawMessage, ok bool) {
	after, ok := bytes.CutPrefix(doc, []byte(`{"ttl":`))
	if !ok {
		return nil, doc, false
	}
	end := bytes.IndexAny(after, ",}")
	if end < 0 {
		return nil, doc, false
	}
	value = after[:end]
	if after[end] == ',' {
		end++
	}
	return value, append([]byte("{"), after[end:]...), true
}

// FromExportDoc undoes ExportDoc for a TTL table's document: the expiry
// its "ttl" names (nil for null or none), and the document with "ttl" as
// a read at now renders it (WithTTL).
func FromExportDoc(doc json.RawMessage, now time.Time) (json.RawMessage, *time.Time) {
	value, rest, ok := cutTTL(doc)
	if !ok {
		return doc, nil
	}
	var expires *time.Time
	if at, err := strconv.ParseInt(string(value), 10, 64); err == nil {
		t := time.Unix(at, 0)
		expires = &t
	}
	return WithTTL(rest, expires, now), expires
}
