// Package memstore holds a whole configuration in memory, as rows of the
// store's tables, and answers the store's reads from it: the Admin API of
// a DB-less node (Kong's database = off) reads its entities here instead
// of from PostgreSQL. As the store's reads do, they leave out the expired
// rows of a TTL table and show "ttl" as the seconds left. A Set is built
// once from a declarative document and never changed; Live swaps whole
// Sets, so a reader sees one configuration or the next, never a mix. It
// writes nothing: every write of a DB-less node replaces the whole
// configuration (POST /config), which is the node's business, not this
// package's. It must not import the proxy or open a database.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/grapevine-gw/grapevine/store"
)

// ErrReadOnly is every write asked of a Set.
var ErrReadOnly = errors.New("the configuration is read-only when not using a database")

// Set is one whole configuration, indexed by the columns the store's
// reads look rows up by.
type Set struct {
	tables map[string]*table
}

// table is one table's rows in id order, with its lookup indexes.
type table struct {
	rows   []store.Row
	byID   map[string]int
	byKey  map[string]int            // endpoint key value (unscoped keys)
	scoped map[string]int            // scope id + "\x00" + key, for keys unique within a parent
	unique map[string]map[string]int // field -> value -> row
	cache  map[string]int            // cache_key
	ttl    bool                      // a TTL table (store.Table.TTL)
}

// New indexes rows (table name -> rows, any order).
func New(rows map[string][]store.Row) *Set {
	s := &Set{tables: make(map[string]*table, len(rows))}
	for name, list := range rows {
		t, ok := store.TableByName(name)
		if !ok {
			continue
		}
		s.tables[name] = newTable(t, list)
	}
	return s
}

func newTable(t store.Table, list []store.Row) *table {
	rows := slices.Clone(list)
	sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
	tb := &table{rows: rows, byID: make(map[string]int, len(rows)), byKey: map[string]int{},
		scoped: map[string]int{}, unique: map[string]map[string]int{}, cache: map[string]int{}, ttl: t.TTL}
	for i, r := range rows {
		tb.byID[r.ID] = i
		if r.Key != nil {
			if t.KeyScope != "" {
				tb.scoped[r.Foreign[t.KeyScope]+"\x00"+*r.Key] = i
			} else {
				tb.byKey[*r.Key] = i
			}
		}
		for field, v := range r.Unique {
			if tb.unique[field] == nil {
				tb.unique[field] = map[string]int{}
			}
			tb.unique[field][v] = i
		}
		if r.CacheKey != nil {
			tb.cache[*r.CacheKey] = i
		}
	}
	return tb
}

// Rows returns every row of every table (table name -> rows in id order);
// the caller must not change them.
func (s *Set) Rows() map[string][]store.Row {
	out := make(map[string][]store.Row, len(s.tables))
	for name, t := range s.tables {
		out[name] = t.rows
	}
	return out
}

func (s *Set) table(t store.Table) *table {
	if tb, ok := s.tables[t.Name]; ok {
		return tb
	}
	return &table{}
}

func notFound(t store.Table, what string) error {
	return fmt.Errorf("get %s %s: %w", t.Name, what, store.ErrNotFound)
}

func (tb *table) at(m map[string]int, key string) (store.Row, bool) {
	i, ok := m[key]
	if !ok {
		return store.Row{}, false
	}
	return tb.shown(tb.rows[i], time.Now())
}

// shown is a row as a read returns it at now: false for a row of a TTL
// table that has expired, and "ttl" (the seconds left, null for never)
// put first in a TTL table's document, as the store's reads (and Kong's
// ttl_select_where) do.
func (tb *table) shown(r store.Row, now time.Time) (store.Row, bool) {
	if !tb.ttl {
		return r, true
	}
	if r.Expires != nil && !r.Expires.After(now) {
		return store.Row{}, false
	}
	r.Doc = store.WithTTL(r.Doc, r.Expires, now)
	return r, true
}

// visible is rows as a read returns them at now (shown).
func (tb *table) visible(rows []store.Row, now time.Time) []store.Row {
	out := make([]store.Row, 0, len(rows))
	for _, r := range rows {
		if r, ok := tb.shown(r, now); ok {
			out = append(out, r)
		}
	}
	return out
}

// Get is store.Store.Get.
func (s *Set) Get(_ context.Context, t store.Table, id string) (store.Row, error) {
	if r, ok := s.table(t).at(s.table(t).byID, id); ok {
		return r, nil
	}
	return store.Row{}, notFound(t, id)
}

// GetByKey is store.Store.GetByKey.
func (s *Set) GetByKey(_ context.Context, t store.Table, key string) (store.Row, error) {
	if t.KeyField == "" || t.KeyScope != "" {
		return store.Row{}, notFound(t, key)
	}
	if r, ok := s.table(t).at(s.table(t).byKey, key); ok {
		return r, nil
	}
	return store.Row{}, notFound(t, key)
}

// GetByScopedKey is store.Store.GetByScopedKey.
func (s *Set) GetByScopedKey(_ context.Context, t store.Table, parentID, key string) (store.Row, error) {
	if r, ok := s.table(t).at(s.table(t).scoped, parentID+"\x00"+key); ok && t.KeyScope != "" {
		return r, nil
	}
	return store.Row{}, notFound(t, key)
}

// GetByUnique is store.Store.GetByUnique.
func (s *Set) GetByUnique(ctx context.Context, t store.Table, field, value string) (store.Row, error) {
	if field == t.KeyField && t.KeyScope == "" {
		return s.GetByKey(ctx, t, value)
	}
	if !slices.Contains(t.Unique, field) {
		return store.Row{}, notFound(t, value)
	}
	if r, ok := s.table(t).at(s.table(t).unique[field], value); ok {
		return r, nil
	}
	return store.Row{}, notFound(t, value)
}

// GetByCacheKey is store.Store.GetByCacheKey.
func (s *Set) GetByCacheKey(_ context.Context, t store.Table, key string) (store.Row, error) {
	if r, ok := s.table(t).at(s.table(t).cache, key); ok && t.CacheKey {
		return r, nil
	}
	return store.Row{}, notFound(t, key)
}

// All is store.Store.All.
func (s *Set) All(_ context.Context, t store.Table) ([]store.Row, error) {
	tb := s.table(t)
	return tb.visible(tb.rows, time.Now()), nil
}

// Referring is store.Store.Referring.
func (s *Set) Referring(_ context.Context, t store.Table, field, parentID string) ([]store.Row, error) {
	if !hasForeign(t, field) {
		return nil, fmt.Errorf("%s has no foreign field %q", t.Name, field)
	}
	tb := s.table(t)
	var out []store.Row
	for _, r := range tb.rows {
		if r.Foreign[field] == parentID {
			out = append(out, r)
		}
	}
	return tb.visible(out, time.Now()), nil
}

// List is store.Store.List: rows in id order after the offset's id, with
// the same tag and parent filters and the same offset tokens.
func (s *Set) List(_ context.Context, t store.Table, p store.Page) ([]store.Row, string, error) {
	size := p.Size
	if size == 0 {
		size = store.DefaultPageSize
	}
	if size < 1 || size > store.MaxPageSize {
		return nil, "", fmt.Errorf("list %s: page size %d out of range 1..%d", t.Name, size, store.MaxPageSize)
	}
	if p.ForeignField != "" && !hasForeign(t, p.ForeignField) {
		return nil, "", fmt.Errorf("list %s: no foreign field %q", t.Name, p.ForeignField)
	}
	tb := s.table(t)
	rows := tb.rows
	start := 0
	if p.Offset != "" {
		key, err := store.DecodeOffsetKey(p.Offset)
		if err != nil {
			return nil, "", fmt.Errorf("list %s: %w", t.Name, err)
		}
		if len(key) != 1 {
			return nil, "", fmt.Errorf("list %s: %w", t.Name, &store.OffsetError{Reason: store.OffsetBadJSON})
		}
		start = sort.Search(len(rows), func(i int) bool { return rows[i].ID > key[0] })
	}
	var out []store.Row
	now := time.Now()
	for _, r := range rows[start:] {
		r, ok := tb.shown(r, now)
		if !ok || !matches(r, p) {
			continue
		}
		if len(out) == size {
			return out, store.EncodeOffsetKey(out[size-1].ID), nil
		}
		out = append(out, r)
	}
	return out, "", nil
}

// matches applies a page's tag and parent filters to one row.
func matches(r store.Row, p store.Page) bool {
	if p.ForeignField != "" && r.Foreign[p.ForeignField] != p.ForeignID {
		return false
	}
	if len(p.Tags) == 0 {
		return true
	}
	for _, tag := range p.Tags {
		has := slices.Contains(r.Tags, tag)
		if p.AnyTag && has {
			return true
		}
		if !p.AnyTag && !has {
			return false
		}
	}
	return !p.AnyTag
}

func hasForeign(t store.Table, field string) bool {
	for _, f := range t.Foreign {
		if f.Field == field {
			return true
		}
	}
	return false
}

// Ping always answers: there is no database to reach.
func (s *Set) Ping(context.Context) error { return nil }

// InTx refuses: a DB-less configuration changes only as a whole.
func (s *Set) InTx(context.Context, func(*store.Tx) error) ([]store.Change, error) {
	return nil, ErrReadOnly
}

// Live is the Set currently served, swapped whole; its methods read the
// Set current when they are called.
type Live struct{ cur atomic.Pointer[Set] }

// NewLive serves set (an empty configuration if nil).
func NewLive(set *Set) *Live {
	l := &Live{}
	l.Store(set)
	return l
}

// Store makes set the one served.
func (l *Live) Store(set *Set) {
	if set == nil {
		set = New(nil)
	}
	l.cur.Store(set)
}

// Load is the Set served now.
func (l *Live) Load() *Set { return l.cur.Load() }

// Get is Set.Get on the current Set.
func (l *Live) Get(ctx context.Context, t store.Table, id string) (store.Row, error) {
	return l.Load().Get(ctx, t, id)
}

// GetByKey is Set.GetByKey on the current Set.
func (l *Live) GetByKey(ctx context.Context, t store.Table, key string) (store.Row, error) {
	return l.Load().GetByKey(ctx, t, key)
}

// GetByScopedKey is Set.GetByScopedKey on the current Set.
func (l *Live) GetByScopedKey(ctx context.Context, t store.Table, parentID, key string) (store.Row, error) {
	return l.Load().GetByScopedKey(ctx, t, parentID, key)
}

// GetByUnique is Set.GetByUnique on the current Set.
func (l *Live) GetByUnique(ctx context.Context, t store.Table, field, value string) (store.Row, error) {
	return l.Load().GetByUnique(ctx, t, field, value)
}

// GetByCacheKey is Set.GetByCacheKey on the current Set.
func (l *Live) GetByCacheKey(ctx context.Context, t store.Table, key string) (store.Row, error) {
	return l.Load().GetByCacheKey(ctx, t, key)
}

// All is Set.All on the current Set.
func (l *Live) All(ctx context.Context, t store.Table) ([]store.Row, error) {
	return l.Load().All(ctx, t)
}

// Referring is Set.Referring on the current Set.
func (l *Live) Referring(ctx context.Context, t store.Table, field, parentID string) ([]store.Row, error) {
	return l.Load().Referring(ctx, t, field, parentID)
}

// List is Set.List on the current Set.
func (l *Live) List(ctx context.Context, t store.Table, p store.Page) ([]store.Row, string, error) {
	return l.Load().List(ctx, t, p)
}

// Ping is Set.Ping.
func (l *Live) Ping(ctx context.Context) error { return nil }

// InTx is Set.InTx: refused.
func (l *Live) InTx(ctx context.Context, fn func(*store.Tx) error) ([]store.Change, error) {
	return nil, ErrReadOnly
}
