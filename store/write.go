package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/jackc/pgx/v5"
)

// Operations recorded in cluster_events.
const (
	OpCreate = "create"
	OpUpdate = "update"
	OpDelete = "delete"
)

// Change is what a write did: the cluster_events row it added (EventID 0:
// nothing changed) and the entity it touched.
type Change struct {
	EventID int64
	Table   string
	ID      string
	Op      string // OpCreate, OpUpdate or OpDelete
}

// Tx is a group of writes that commit or roll back together, each recording
// its own cluster_events row (a declarative import, a cascade). Use it only
// inside the function given to Store.InTx.
type Tx struct {
	tx      pgx.Tx
	nodeID  string
	changes []Change
}

// InTx runs fn in one transaction and returns the changes its writes made,
// in order, once committed. If fn or the commit fails, nothing is written
// and no event is recorded.
func (s *Store) InTx(ctx context.Context, fn func(*Tx) error) ([]Change, error) {
	x := &Tx{nodeID: s.nodeID}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		x.tx = tx
		return fn(x)
	})
	if err != nil {
		return nil, classify(err)
	}
	return x.changes, nil
}

// Insert adds r; an existing id gives *PrimaryKeyError.
func (s *Store) Insert(ctx context.Context, t Table, r Row) (Change, error) {
	return s.one(ctx, func(x *Tx) (Change, error) { return x.Insert(ctx, t, r) })
}

// Upsert inserts r or, if its id exists, replaces every column of that row.
func (s *Store) Upsert(ctx context.Context, t Table, r Row) (Change, error) {
	return s.one(ctx, func(x *Tx) (Change, error) { return x.Upsert(ctx, t, r) })
}

// Update replaces every column of the row with r.ID; ErrNotFound if absent.
func (s *Store) Update(ctx context.Context, t Table, r Row) (Change, error) {
	return s.one(ctx, func(x *Tx) (Change, error) { return x.Update(ctx, t, r) })
}

// Delete removes the row with id and returns its change; rows that cascade
// with it are deleted too (see Tx.Delete; InTx returns all the changes).
// An absent id is not an error: it returns Change{} and records no event.
// A row still referred to by restricting children gives *ReferencedError.
func (s *Store) Delete(ctx context.Context, t Table, id string) (Change, error) {
	return s.one(ctx, func(x *Tx) (Change, error) { return x.Delete(ctx, t, id) })
}

// Modify rewrites the row with id from what is stored when it commits: it
// reads the row under a row lock (SELECT … FOR UPDATE), so that writers of
// the same row queue instead of overwriting each other's changes, lets
// change build the new row from it, and updates it with its cluster_events
// row, all in one transaction. An error from change is returned as is and
// writes nothing. ErrNotFound if the row is gone.
func (s *Store) Modify(ctx context.Context, t Table, id string, change func(current Row) (Row, error)) (Change, Row, error) {
	var written Row
	c, err := s.one(ctx, func(x *Tx) (Change, error) {
		var err error
		var c Change
		c, written, err = x.Modify(ctx, t, id, change)
		return c, err
	})
	if err != nil {
		return Change{}, Row{}, err
	}
	return c, written, nil
}

// Modify is Store.Modify within the transaction, which holds the row
// lock until it ends.
func (x *Tx) Modify(ctx context.Context, t Table, id string, change func(current Row) (Row, error)) (Change, Row, error) {
	current, err := x.GetForUpdate(ctx, t, id)
	if err != nil {
		return Change{}, Row{}, err
	}
	written, err := change(current)
	if err != nil {
		return Change{}, Row{}, err
	}
	written.ID = current.ID
	c, err := x.Update(ctx, t, written)
	if err != nil {
		return Change{}, Row{}, err
	}
	return c, written, nil
}

// one runs a single write in its own transaction.
func (s *Store) one(ctx context.Context, write func(*Tx) (Change, error)) (Change, error) {
	var c Change
	_, err := s.InTx(ctx, func(x *Tx) error {
		var err error
		c, err = write(x)
		return err
	})
	if err != nil {
		return Change{}, err
	}
	return c, nil
}

// Insert adds r within the transaction; see Store.Insert.
func (x *Tx) Insert(ctx context.Context, t Table, r Row) (Change, error) {
	vals, err := t.values(r)
	if err != nil {
		return Change{}, fmt.Errorf("insert %s: %w", t.Name, err)
	}
	if err := x.clearExpired(ctx, t); err != nil {
		return Change{}, err
	}
	query := "INSERT INTO " + t.ident() + " (" + strings.Join(t.quotedColumns(), ", ") +
		") VALUES (" + placeholders(len(vals)) + ")"
	return x.record(ctx, t, r, "insert", func() (string, error) {
		_, err := x.tx.Exec(ctx, query, vals...)
		return OpCreate, err
	})
}

// Upsert inserts or replaces r within the transaction; see Store.Upsert.
func (x *Tx) Upsert(ctx context.Context, t Table, r Row) (Change, error) {
	vals, err := t.values(r)
	if err != nil {
		return Change{}, fmt.Errorf("upsert %s: %w", t.Name, err)
	}
	if err := x.clearExpired(ctx, t); err != nil {
		return Change{}, err
	}
	// xmax is 0 on a freshly inserted row version, set on an updated one.
	query := t.upsertSQL() + " RETURNING xmax = 0"
	return x.record(ctx, t, r, "upsert", func() (string, error) {
		var inserted bool
		if err := x.tx.QueryRow(ctx, query, vals...).Scan(&inserted); err != nil {
			return "", err
		}
		if inserted {
			return OpCreate, nil
		}
		return OpUpdate, nil
	})
}

// upsertSQL inserts a row or replaces every column of the row with its id.
func (t Table) upsertSQL() string {
	cols := t.quotedColumns()
	sets := make([]string, 0, len(cols)-1)
	for _, c := range cols[1:] {
		sets = append(sets, c+" = EXCLUDED."+c)
	}
	return "INSERT INTO " + t.ident() + " (" + strings.Join(cols, ", ") +
		") VALUES (" + placeholders(len(cols)) + ") ON CONFLICT (id) DO UPDATE SET " +
		strings.Join(sets, ", ")
}

// Update replaces r within the transaction; see Store.Update.
func (x *Tx) Update(ctx context.Context, t Table, r Row) (Change, error) {
	vals, err := t.values(r)
	if err != nil {
		return Change{}, fmt.Errorf("update %s: %w", t.Name, err)
	}
	cols := t.quotedColumns()
	sets := make([]string, 0, len(cols)-1)
	for i, c := range cols[1:] {
		sets = append(sets, c+" = $"+strconv.Itoa(i+2))
	}
	query := "UPDATE " + t.ident() + " SET " + strings.Join(sets, ", ") + " WHERE id = $1"
	return x.record(ctx, t, r, "update", func() (string, error) {
		tag, err := x.tx.Exec(ctx, query, vals...)
		if err != nil {
			return "", err
		}
		if tag.RowsAffected() == 0 {
			return "", ErrNotFound
		}
		return OpUpdate, nil
	})
}

// Delete removes id within the transaction; see Store.Delete. Rows of
// tables whose foreign field cascades on delete (Kong's on_delete =
// "cascade") go first, each with its own cluster_events row, so that
// every node learns of them; a restricting referrer makes the delete fail
// with *ReferencedError. The row is locked before its referrers are read,
// so a referrer inserted meanwhile waits and then fails its foreign key.
func (x *Tx) Delete(ctx context.Context, t Table, id string) (Change, error) {
	return x.deleteDepth(ctx, t, id, 0)
}

// maxCascadeDepth bounds a cascade's recursion; Kong's deepest is two
// (a service's routes' plugins would be, were routes to cascade).
const maxCascadeDepth = 8

func (x *Tx) deleteDepth(ctx context.Context, t Table, id string, depth int) (Change, error) {
	if !isUUID(id) {
		return Change{}, nil
	}
	if err := x.deleteReferrers(ctx, t, id, depth); err != nil {
		return Change{}, err
	}
	query := "DELETE FROM " + t.ident() + " WHERE id = $1"
	return x.record(ctx, t, Row{ID: id}, "delete", func() (string, error) {
		tag, err := x.tx.Exec(ctx, query, id)
		if err != nil || tag.RowsAffected() == 0 {
			return "", err
		}
		return OpDelete, nil
	})
}

// deleteReferrers deletes the rows that reference t's row id through a
// cascading foreign field.
func (x *Tx) deleteReferrers(ctx context.Context, t Table, id string, depth int) error {
	children := cascadingReferrers(t.Name)
	if len(children) == 0 {
		return nil
	}
	if depth >= maxCascadeDepth {
		return fmt.Errorf("delete %s %s: cascade deeper than %d", t.Name, id, maxCascadeDepth)
	}
	lock := "SELECT 1 FROM " + t.ident() + " WHERE id = $1 FOR UPDATE"
	if _, err := x.tx.Exec(ctx, lock, id); err != nil {
		return fmt.Errorf("delete %s %s: lock: %w", t.Name, id, classify(err))
	}
	for _, c := range children {
		if err := x.deleteChildren(ctx, c.table, c.column(), id, depth); err != nil {
			return err
		}
	}
	return nil
}

func (x *Tx) deleteChildren(ctx context.Context, child Table, column, parentID string, depth int) error {
	query := "SELECT id::text FROM " + child.ident() + " WHERE " + pgx.Identifier{column}.Sanitize() + " = $1 ORDER BY id"
	rows, err := x.tx.Query(ctx, query, parentID)
	if err != nil {
		return fmt.Errorf("find %s of %s: %w", child.Name, parentID, classify(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("find %s of %s: %w", child.Name, parentID, classify(err))
	}
	for _, id := range ids {
		if _, err := x.deleteDepth(ctx, child, id, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// cascadeRef is a cascading foreign field of table.
type cascadeRef struct {
	table Table
	Foreign
}

// cascadingReferrers lists the foreign fields that point at table name
// with on_delete = cascade.
func cascadingReferrers(name string) []cascadeRef {
	var out []cascadeRef
	for _, ref := range entity.Referrers(name) {
		if ref.OnDelete == entity.OnDeleteCascade {
			child := TableOf(ref.Kind)
			f, _ := child.foreign(ref.Field)
			out = append(out, cascadeRef{table: child, Foreign: f})
		}
	}
	return out
}

// Get reads a row within the transaction, seeing its earlier writes.
func (x *Tx) Get(ctx context.Context, t Table, id string) (Row, error) {
	if !isUUID(id) {
		return Row{}, fmt.Errorf("get %s %s: %w", t.Name, id, ErrNotFound)
	}
	return getWhere(ctx, x.tx, t, "id", id)
}

// GetForUpdate reads a row within the transaction and locks it until the
// transaction ends.
func (x *Tx) GetForUpdate(ctx context.Context, t Table, id string) (Row, error) {
	if !isUUID(id) {
		return Row{}, fmt.Errorf("get %s %s: %w", t.Name, id, ErrNotFound)
	}
	return getWhereSuffix(ctx, x.tx, t, "id", id, " FOR UPDATE")
}

// record runs change and, if it changed a row (it returns an op), adds the
// cluster_events row in the same transaction.
func (x *Tx) record(ctx context.Context, t Table, r Row, verb string, change func() (string, error)) (Change, error) {
	op, err := change()
	if err == nil && op != "" {
		c := Change{Table: t.Name, ID: r.ID, Op: op}
		err = x.tx.QueryRow(ctx, insertEvent, x.nodeID, t.Name, r.ID, op).Scan(&c.EventID)
		if err == nil {
			x.changes = append(x.changes, c)
			return c, nil
		}
	}
	if err != nil {
		return Change{}, fmt.Errorf("%s %s %s: %w", verb, t.Name, r.ID, writeError(t, r, err))
	}
	return Change{}, nil
}

func placeholders(n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = "$" + strconv.Itoa(i+1)
	}
	return strings.Join(ps, ", ")
}

// writeError turns constraint violations into the typed errors.
func writeError(t Table, r Row, err error) error {
	pgErr, ok := pgError(err)
	if !ok {
		return classify(err)
	}
	switch pgErr.Code {
	case "23505": // unique_violation
		return uniqueError(t, r, pgErr.ConstraintName, pgErr.Detail)
	case "23503": // foreign_key_violation
		if pgErr.TableName != t.Name {
			// Our row is the parent: another table still refers to it.
			return &ReferencedError{Table: t.Name, By: pgErr.TableName}
		}
		return foreignKeyError(t, r, pgErr.ConstraintName)
	}
	return classify(err)
}

// uniqueError maps PostgreSQL's default constraint names (<table>_pkey,
// <table>_<column>_key) back to the entity field. A unique column the
// store does not write (one derived from the document, such as a key's
// cache_key) is named by PostgreSQL's detail, "Key (col)=(value) …".
func uniqueError(t Table, r Row, constraint, detail string) error {
	if constraint == t.Name+"_pkey" {
		return &PrimaryKeyError{Table: t.Name, ID: r.ID}
	}
	if t.KeyField != "" && constraint == t.Name+"_"+t.KeyField+"_key" {
		value := ""
		if r.Key != nil {
			value = *r.Key
		}
		ue := &UniqueError{Table: t.Name, Field: t.KeyField, Value: value}
		if t.KeyScope != "" {
			ue.Scope, ue.ScopeID = t.KeyScope, r.Foreign[t.KeyScope]
		}
		return ue
	}
	if t.CacheKey && constraint == t.Name+"_cache_key_key" {
		value := ""
		if r.CacheKey != nil {
			value = *r.CacheKey
		}
		return &UniqueError{Table: t.Name, Field: "cache_key", Value: value, Doc: r.Doc}
	}
	for _, col := range t.Unique {
		if constraint == t.Name+"_"+col+"_key" {
			return &UniqueError{Table: t.Name, Field: col, Value: r.Unique[col]}
		}
	}
	if col, value, ok := parseKeyDetail(detail); ok {
		return &UniqueError{Table: t.Name, Field: col, Value: value}
	}
	return &UniqueError{Table: t.Name, Field: constraint}
}

// parseKeyDetail reads "Key (col)=(value) already exists." for a single
// column.
func parseKeyDetail(detail string) (col, value string, ok bool) {
	rest, ok := strings.CutPrefix(detail, "Key (")
	if !ok {
		return "", "", false
	}
	col, rest, ok = strings.Cut(rest, ")=(")
	if !ok || strings.ContainsAny(col, ", ") {
		return "", "", false
	}
	value, ok = strings.CutSuffix(rest, ") already exists.")
	return col, value, ok
}

// foreignKeyError maps <table>_<field>_id_fkey back to the foreign field.
func foreignKeyError(t Table, r Row, constraint string) error {
	for _, f := range t.Foreign {
		if constraint == t.Name+"_"+f.column()+"_fkey" {
			return &ForeignKeyError{Table: t.Name, Field: f.Field, RefTable: f.Table, ID: r.Foreign[f.Field]}
		}
	}
	return &ForeignKeyError{Table: t.Name, Field: constraint}
}
