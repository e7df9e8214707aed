package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ReloadAllTable is the entity of the one cluster_events row a whole
// replacement of the configuration records (ReplaceAll): a node that sees
// it reloads everything instead of re-reading one row per entity. Its
// entity_id is ReloadAllID and its op OpUpdate.
const (
	ReloadAllTable = "*"
	ReloadAllID    = "00000000-0000-0000-0000-000000000000"
)

// TableRows is every row of one table, for ReplaceAll.
type TableRows struct {
	Table Table
	Rows  []Row
}

// ReplaceAll makes tables hold exactly the given rows, in one transaction:
// it empties every table of Tables() (children first), copies the rows in
// (in the order given, which must put parents before children) and records
// a single cluster_events row (ReloadAllTable), not one per row, so that a
// ten-thousand-entity import costs each node one full reload. Either all
// of it commits or nothing changes.
func (s *Store) ReplaceAll(ctx context.Context, data []TableRows) (Change, error) {
	var c Change
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		all := Tables()
		for i := len(all) - 1; i >= 0; i-- {
			if _, err := tx.Exec(ctx, "DELETE FROM "+all[i].ident()); err != nil {
				return fmt.Errorf("empty %s: %w", all[i].Name, err)
			}
		}
		for _, d := range data {
			if err := copyRows(ctx, tx, d.Table, d.Rows); err != nil {
				return err
			}
		}
		c = Change{Table: ReloadAllTable, ID: ReloadAllID, Op: OpUpdate}
		err := tx.QueryRow(ctx, insertEvent, s.nodeID, ReloadAllTable, ReloadAllID, OpUpdate).Scan(&c.EventID)
		if err != nil {
			return fmt.Errorf("record the reload event: %w", err)
		}
		return nil
	})
	if err != nil {
		return Change{}, classify(err)
	}
	return c, nil
}

// copyRows inserts rows with COPY: one round trip for a whole table.
func copyRows(ctx context.Context, tx pgx.Tx, t Table, rows []Row) error {
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
	_, err := tx.CopyFrom(ctx, pgx.Identifier{t.Name}, t.columns(), pgx.CopyFromRows(values))
	if err != nil {
		return fmt.Errorf("import %s: %w", t.Name, copyError(t, err))
	}
	return nil
}

// copyError names the field a failed COPY violated; COPY gives no row, so
// the value comes from PostgreSQL's detail.
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
