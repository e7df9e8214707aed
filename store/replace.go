package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/parallel"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ReloadAllTable is the entity of the one cluster_events row a whole
// import of the configuration records (UpsertAll): a node that sees
// it reloads everything instead of re-reading one row per entity. Its
// entity_id is ReloadAllID and its op OpUpdate.
const (
	ReloadAllTable = "*"
	ReloadAllID    = "00000000-0000-0000-0000-000000000000"
)

// TableRows is rows of one table, for UpsertAll.
type TableRows struct {
	Table Table
	Rows  []Row
}

// UpsertAll inserts or replaces every row given (parents before children),
// leaving the other rows as they are, as Kong's `kong config db_import`
// upserts each entity of a file (kong/db/declarative/import.lua
// load_into_db). Unlike Kong's it is one transaction, all or nothing, and
// records one cluster_events row (ReloadAllTable) for the whole import.
func (s *Store) UpsertAll(ctx context.Context, data []TableRows) (Change, error) {
	return s.UpsertAllReporting(ctx, data, nil)
}

// Progress hears how an import goes: rows sent to the database so far, of
// total. It is called every progressEvery rows and at the end of each
// table, from the importing goroutine.
type Progress func(sent, total int)

// progressEvery is how many rows go to the database between two Progress
// calls.
const progressEvery = 1000

// UpsertAllReporting is UpsertAll telling progress (when not nil) how many
// rows it has sent.
func (s *Store) UpsertAllReporting(ctx context.Context, data []TableRows, progress Progress) (Change, error) {
	total := 0
	for _, d := range data {
		total += len(d.Rows)
	}
	sent := 0
	report := func(n int) {
		sent += n
		if progress != nil {
			progress(sent, total)
		}
	}
	var c Change
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		sent = 0
		for _, d := range data {
			if err := upsertRows(ctx, tx, d.Table, d.Rows, report); err != nil {
				return err
			}
		}
		var err error
		c, err = recordReloadAll(ctx, tx, s.nodeID)
		return err
	})
	if err != nil {
		return Change{}, classify(err)
	}
	return c, nil
}

// upsertRows copies rows into a temporary table, then inserts them from
// there with ON CONFLICT (id) DO UPDATE: COPY's speed (one round trip per
// table, where a statement per row costs ten thousand) with an upsert's
// meaning. Into an empty table (a first import, a rebuilt gateway) there
// is nothing to conflict with, and the rows are copied into it directly:
// a fifth less of PostgreSQL's work for bench-import's 50 000 rows.
func upsertRows(ctx context.Context, tx pgx.Tx, t Table, rows []Row, report func(rows int)) error {
	if len(rows) == 0 {
		return nil
	}
	values := make([][]any, len(rows))
	for i, r := range rows {
		vals, err := t.values(r)
		if err != nil {
			return fmt.Errorf("import %s: %w", t.Name, err)
		}
		values[i] = vals
	}
	var empty bool
	if err := tx.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM "+t.ident()+")").Scan(&empty); err != nil {
		return fmt.Errorf("import %s: %w", t.Name, err)
	}
	if empty {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{t.Name}, t.columns(), copySource(values, report)); err != nil {
			return fmt.Errorf("import %s: %w", t.Name, copyError(t, err))
		}
		return nil
	}
	staging := pgx.Identifier{"import_" + t.Name}
	create := "CREATE TEMPORARY TABLE " + staging.Sanitize() + " (LIKE " + t.ident() + " INCLUDING DEFAULTS) ON COMMIT DROP"
	if _, err := tx.Exec(ctx, create); err != nil {
		return fmt.Errorf("import %s: staging table: %w", t.Name, err)
	}
	if _, err := tx.CopyFrom(ctx, staging, t.columns(), copySource(values, report)); err != nil {
		return fmt.Errorf("import %s: %w", t.Name, copyError(t, err))
	}
	cols := strings.Join(t.quotedColumns(), ", ")
	sets := make([]string, 0, len(t.columns())-1)
	for _, c := range t.quotedColumns()[1:] {
		sets = append(sets, c+" = EXCLUDED."+c)
	}
	upsert := "INSERT INTO " + t.ident() + " (" + cols + ") SELECT " + cols + " FROM " + staging.Sanitize() +
		" ON CONFLICT (id) DO UPDATE SET " + strings.Join(sets, ", ")
	if _, err := tx.Exec(ctx, upsert); err != nil {
		return fmt.Errorf("import %s: %w", t.Name, copyError(t, err))
	}
	return nil
}

// copySource hands COPY the rows, calling report with each progressEvery
// rows taken and with the rest at the end.
func copySource(values [][]any, report func(rows int)) pgx.CopyFromSource {
	next, pending := 0, 0
	return pgx.CopyFromFunc(func() ([]any, error) {
		if next == len(values) {
			if pending > 0 {
				report(pending)
				pending = 0
			}
			return nil, nil
		}
		next++
		if pending++; pending == progressEvery {
			report(pending)
			pending = 0
		}
		return values[next-1], nil
	})
}

// recordReloadAll adds the one cluster_events row of a whole import.
func recordReloadAll(ctx context.Context, tx pgx.Tx, nodeID string) (Change, error) {
	c := Change{Table: ReloadAllTable, ID: ReloadAllID, Op: OpUpdate}
	err := tx.QueryRow(ctx, insertEvent, nodeID, ReloadAllTable, ReloadAllID, OpUpdate).Scan(&c.EventID)
	if err != nil {
		return Change{}, fmt.Errorf("record the reload event: %w", err)
	}
	// Delivered to every listening node when, and only if, the import
	// commits (see ListenReloads).
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", ReloadChannel, strconv.FormatInt(c.EventID, 10)); err != nil {
		return Change{}, fmt.Errorf("notify the reload event: %w", err)
	}
	return c, nil
}

// copyError names the field a failed COPY or INSERT … SELECT violated;
// neither gives the row, so the value comes from PostgreSQL's detail.
func copyError(t Table, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return classify(err)
	}
	switch pgErr.Code {
	case "23505":
		if col, value, ok := parseKeyDetail(pgErr.Detail); ok {
			return &UniqueError{Table: t.Name, Field: col, Value: value}
		}
		return writeError(t, Row{}, err)
	case "23503":
		return foreignKeyError(t, Row{}, pgErr.ConstraintName)
	}
	return classify(err)
}

// RowOf is how a validated document of kind k is stored: its indexed
// columns taken out of it beside the whole document, as the Admin API
// stores what it validated.
func RowOf(k *entity.Kind, doc map[string]any) (Row, error) {
	t := TableOf(k)
	doc, expires := takeTTL(t, doc)
	raw, err := json.Marshal(doc)
	if err != nil {
		return Row{}, fmt.Errorf("encode %s: %w", k.Name(), err)
	}
	row := Row{Doc: raw, Tags: entity.Strings(doc["tags"]), Expires: expires}
	row.ID, _ = doc["id"].(string)
	if key, ok := doc[t.KeyField].(string); ok && t.KeyField != "" {
		row.Key = &key
	}
	row.CreatedAt, row.UpdatedAt = seconds(doc["created_at"]), seconds(doc["updated_at"])
	if t.CacheKey {
		key := entity.CacheKeyOf(k.Schema, doc)
		row.CacheKey = &key
	}
	for _, col := range t.Unique {
		if v, ok := doc[col].(string); ok {
			if row.Unique == nil {
				row.Unique = map[string]string{}
			}
			row.Unique[col] = v
		}
	}
	for _, f := range t.Foreign {
		if ref, ok := doc[f.Field].(map[string]any); ok {
			if row.Foreign == nil {
				row.Foreign = map[string]string{}
			}
			row.Foreign[f.Field], _ = ref["id"].(string)
		}
	}
	return row, nil
}

// RowsOf is RowOf of every document of kind k, in order, on every core:
// encoding the documents of a big import took the importer as long as
// parsing the file. The first error in document order is returned.
func RowsOf(k *entity.Kind, docs []map[string]any) ([]Row, error) {
	rows := make([]Row, len(docs))
	err := parallel.For(len(docs), func(i int) (err error) {
		rows[i], err = RowOf(k, docs[i])
		return err
	})
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// seconds is a validated timestamp in whole seconds (a number timestamp
// keeps its milliseconds in the document only).
func seconds(v any) int64 {
	switch t := v.(type) {
	case int64:
		return t
	case float64:
		return int64(t)
	case json.Number:
		f, _ := t.Float64()
		return int64(f)
	}
	return 0
}
