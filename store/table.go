package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/grapevine-gw/grapevine/entity"
	"github.com/jackc/pgx/v5"
)

// Foreign is a reference from one entity to another, stored in the column
// Field+"_id" of the referring table, e.g. {Field: "service", Table: "services"}.
type Foreign struct {
	Field    string          // the entity's field name, e.g. "service"
	Table    string          // the referenced table, e.g. "services"
	OnDelete entity.OnDelete // restrict, or cascade: Delete removes the referring rows too
}

// column is the foreign key's column name.
func (f Foreign) column() string { return f.Field + "_id" }

// Table describes how one entity kind is stored; TableOf derives it from
// the kind, and the kind's migration must create matching columns.
type Table struct {
	Name     string // table name, e.g. "services"
	KeyField string // Kong's endpoint key column ("name"); "" if none
	// KeyScope is the foreign field within whose parent KeyField is
	// unique ("upstream" for a target); "" when it is unique outright.
	KeyScope string
	Unique   []string // other unique text columns (a consumer's custom_id)
	// CacheKey says the table has a unique cache_key column: Kong's
	// composite cache key (a plugin's name and scope), see entity.CacheKeyOf.
	CacheKey bool
	Foreign  []Foreign // references to parent entities
	// TTL says the table has a ttl column, the expiry of rows written
	// with Kong's ttl option (entity.Schema.TTL): as in Kong's postgres
	// strategy (kong/db/strategies/postgres/init.lua), rows whose ttl has
	// passed are invisible to every read until DeleteExpired removes them,
	// and a read renders "ttl" as the seconds left (null without one).
	TTL bool
}

// TableOf is how kind k is stored: one column per unique field and per
// foreign field beside the common ones (see migrations/001_base.sql).
func TableOf(k *entity.Kind) Table {
	t := Table{Name: k.Name(), KeyField: k.EndpointKey(), KeyScope: k.Schema.KeyScope}
	for _, f := range k.Unique() {
		if f != t.KeyField {
			t.Unique = append(t.Unique, f)
		}
	}
	t.CacheKey = len(k.Schema.CacheKey) > 1
	t.TTL = k.Schema.TTL
	for _, ref := range k.References() {
		t.Foreign = append(t.Foreign, Foreign{Field: ref.Field, Table: ref.Kind, OnDelete: ref.OnDelete})
	}
	return t
}

// Tables returns the table of every registered kind, parents before
// children.
func Tables() []Table {
	kinds := entity.Kinds()
	out := make([]Table, len(kinds))
	for i, k := range kinds {
		out[i] = TableOf(k)
	}
	return out
}

// TableByName returns the table of the registered kind name.
func TableByName(name string) (Table, bool) {
	k, ok := entity.KindByName(name)
	if !ok {
		return Table{}, false
	}
	return TableOf(k), true
}

// Shorthands for the core kinds' tables.
var (
	Services = TableOf(entity.MustKind("services"))
	Routes   = TableOf(entity.MustKind("routes"))
)

// Row is one stored entity: the indexed columns and the whole document.
type Row struct {
	ID        string            // uuid text
	Key       *string           // endpoint key value; nil = NULL
	Unique    map[string]string // Table.Unique column -> value; absent = NULL
	CacheKey  *string           // the cache_key column, if Table.CacheKey; nil = NULL
	Foreign   map[string]string // foreign Field -> referenced id; absent = NULL
	Tags      []string          // nil = NULL
	CreatedAt int64             // epoch seconds, as the entity's created_at
	UpdatedAt int64             // epoch seconds, as the entity's updated_at
	Doc       json.RawMessage   // the entity's full JSON, as the Admin API renders it
	// Expires is when a row of a TTL table expires; nil = never. A read
	// also renders it into Doc as Kong's "ttl" (see Table.TTL).
	Expires *time.Time
}

// foreign returns the reference for field, if t has one.
func (t Table) foreign(field string) (Foreign, bool) {
	for _, f := range t.Foreign {
		if f.Field == field {
			return f, true
		}
	}
	return Foreign{}, false
}

func (t Table) ident() string { return pgx.Identifier{t.Name}.Sanitize() }

// from is what reads select from: the table, or for a TTL table only
// its rows that have not expired, by the database's clock (Kong's
// ttl_select_where), under the table's own name.
func (t Table) from() string {
	if !t.TTL {
		return t.ident()
	}
	return "(SELECT * FROM " + t.ident() + " WHERE ttl IS NULL OR ttl >= now()) AS " + t.ident()
}

// columns lists the table's columns in the order values and scans use.
func (t Table) columns() []string {
	cols := []string{"id"}
	if t.KeyField != "" {
		cols = append(cols, t.KeyField)
	}
	cols = append(cols, t.Unique...)
	if t.CacheKey {
		cols = append(cols, "cache_key")
	}
	for _, f := range t.Foreign {
		cols = append(cols, f.column())
	}
	cols = append(cols, "tags", "created_at", "updated_at", "doc")
	if t.TTL {
		cols = append(cols, "ttl")
	}
	return cols
}

// selectList is the SELECT list matching scanRow; uuids come back as text.
func (t Table) selectList() string {
	cols := t.columns()
	for i, c := range cols {
		q := pgx.Identifier{c}.Sanitize()
		if c == "id" || strings.HasSuffix(c, "_id") {
			q += "::text"
		}
		cols[i] = q
	}
	return strings.Join(cols, ", ")
}

// docList is the SELECT list matching scanDoc: the id, the document and,
// for a TTL table, the expiry.
func (t Table) docList() string {
	if t.TTL {
		return "id::text, doc, ttl"
	}
	return "id::text, doc"
}

// scanDoc reads one row selected with docList; the indexed columns stay
// empty.
func (t Table) scanDoc(row pgx.CollectableRow) (Row, error) {
	// The id and the document come as text (a cursor's FETCH has no
	// described types): taken as they are, copied off the connection's
	// buffer, they skip Scan's conversions, a third of reading a row.
	vals, fds := row.RawValues(), row.FieldDescriptions()
	if len(vals) >= 2 && vals[0] != nil && vals[1] != nil && fds[0].Format == pgx.TextFormatCode && fds[1].Format == pgx.TextFormatCode {
		if !t.TTL && len(vals) == 2 {
			return Row{ID: string(vals[0]), Doc: json.RawMessage(bytes.Clone(vals[1]))}, nil
		}
		if body := bytes.TrimSpace(vals[1]); t.TTL && len(vals) == 3 && vals[2] == nil && len(body) >= 2 && body[0] == '{' {
			// No expiry, the common case: WithTTL copies an object off
			// the buffer (anything else it would return as it is).
			return Row{ID: string(vals[0]), Doc: WithTTL(vals[1], nil, time.Now())}, nil
		}
	}
	var r Row
	var doc []byte
	dest := []any{&r.ID, &doc}
	if t.TTL {
		dest = append(dest, &r.Expires)
	}
	if err := row.Scan(dest...); err != nil {
		return Row{}, err
	}
	r.Doc = json.RawMessage(doc)
	if t.TTL {
		r.Doc = WithTTL(r.Doc, r.Expires, time.Now())
	}
	return r, nil
}

// quotedColumns is the column list for INSERT.
func (t Table) quotedColumns() []string {
	cols := t.columns()
	for i, c := range cols {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	return cols
}

// values returns r's column values in columns() order, checking r first.
func (t Table) values(r Row) ([]any, error) {
	if !isUUID(r.ID) {
		return nil, fmt.Errorf("invalid id %q: not a uuid", r.ID)
	}
	if len(r.Doc) == 0 || !json.Valid(r.Doc) {
		return nil, fmt.Errorf("row %s: doc is not valid JSON", r.ID)
	}
	vals := []any{r.ID}
	if t.KeyField != "" {
		vals = append(vals, r.Key)
	}
	for _, col := range t.Unique {
		vals = append(vals, uniqueValue(r, col))
	}
	if t.CacheKey {
		vals = append(vals, r.CacheKey)
	}
	fks, err := t.foreignValues(r)
	if err != nil {
		return nil, err
	}
	vals = append(vals, fks...)
	vals = append(vals, r.Tags, r.CreatedAt, r.UpdatedAt, []byte(r.Doc))
	if t.TTL {
		vals = append(vals, r.Expires)
	}
	return vals, nil
}

// foreignValues returns one value per t.Foreign: the id, or nil for NULL.
func (t Table) foreignValues(r Row) ([]any, error) {
	for field := range r.Foreign {
		if _, ok := t.foreign(field); !ok {
			return nil, fmt.Errorf("%s has no foreign field %q", t.Name, field)
		}
	}
	vals := make([]any, len(t.Foreign))
	for i, f := range t.Foreign {
		id, ok := r.Foreign[f.Field]
		if !ok || id == "" {
			continue
		}
		if !isUUID(id) {
			return nil, &ForeignKeyError{Table: t.Name, Field: f.Field, RefTable: f.Table, ID: id}
		}
		vals[i] = id
	}
	return vals, nil
}

// scanRow reads one row selected with selectList.
func (t Table) scanRow(row pgx.Row) (Row, error) {
	var r Row
	fks := make([]*string, len(t.Foreign))
	dest := []any{&r.ID}
	if t.KeyField != "" {
		dest = append(dest, &r.Key)
	}
	uniques := make([]*string, len(t.Unique))
	for i := range uniques {
		dest = append(dest, &uniques[i])
	}
	if t.CacheKey {
		dest = append(dest, &r.CacheKey)
	}
	for i := range fks {
		dest = append(dest, &fks[i])
	}
	var created, updated *int64
	var doc []byte
	dest = append(dest, &r.Tags, &created, &updated, &doc)
	if t.TTL {
		dest = append(dest, &r.Expires)
	}
	if err := row.Scan(dest...); err != nil {
		return Row{}, err
	}
	r.CreatedAt, r.UpdatedAt, r.Doc = deref(created), deref(updated), json.RawMessage(doc)
	if t.TTL {
		r.Doc = WithTTL(r.Doc, r.Expires, time.Now())
	}
	for i, v := range uniques {
		if v != nil {
			if r.Unique == nil {
				r.Unique = make(map[string]string, len(uniques))
			}
			r.Unique[t.Unique[i]] = *v
		}
	}
	for i, id := range fks {
		if id != nil {
			if r.Foreign == nil {
				r.Foreign = make(map[string]string, len(fks))
			}
			r.Foreign[t.Foreign[i].Field] = *id
		}
	}
	return r, nil
}

// uniqueValue is r's value of a Table.Unique column; nil for NULL.
func uniqueValue(r Row, col string) any {
	if v, ok := r.Unique[col]; ok {
		return v
	}
	return nil
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// isUUID says whether s is a uuid in its canonical 8-4-4-4-12 form, the
// only one Kong uses. uuid.Validate alone also takes "urn:uuid:…" and
// "{…}", which PostgreSQL does not all accept.
func isUUID(s string) bool { return len(s) == 36 && uuid.Validate(s) == nil }

// isText says whether s can be a text column value: PostgreSQL refuses
// invalid utf-8 and NUL bytes.
func isText(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// WithTTL returns doc (a stored document, which never holds "ttl") with
// Kong's "ttl" as a read renders it: the whole seconds left until expires
// at now (FLOOR(EXTRACT(EPOCH FROM ttl - CURRENT_TIMESTAMP)) in Kong's
// postgres strategy), never below 0, or null when it never expires.
func WithTTL(doc json.RawMessage, expires *time.Time, now time.Time) json.RawMessage {
	value := "null"
	if expires != nil {
		left := math.Floor(expires.Sub(now).Seconds())
		value = strconv.FormatInt(max(int64(left), 0), 10)
	}
	return withTTLValue(doc, value)
}

// withTTLValue puts "ttl": value first in doc.
func withTTLValue(doc json.RawMessage, value string) json.RawMessage {
	body := bytes.TrimSpace(doc)
	if len(body) < 2 || body[0] != '{' {
		return doc // not an object: stored documents always are
	}
	rest := bytes.TrimSpace(body[1:])
	out := make(json.RawMessage, 0, len(`{"ttl":,`)+len(value)+len(rest)) // one copy: a full reload does this for every key
	out = append(append(out, `{"ttl":`...), value...)
	if string(rest) != "}" {
		out = append(out, ',')
	}
	return append(out, rest...)
}

// ExpiresAfter is when an entity written at from with Kong's ttl option
// of seconds expires: nil (never) for 0, as Kong's get_ttl_value.
func ExpiresAfter(from time.Time, seconds int64) *time.Time {
	if seconds <= 0 {
		return nil
	}
	at := from.Add(time.Duration(seconds) * time.Second)
	return &at
}
