package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

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

// Insert adds r; an existing id gives *PrimaryKeyError.
func (s *Store) Insert(ctx context.Context, t Table, r Row) (Change, error) {
	vals, err := t.values(r)
	if err != nil {
		return Change{}, fmt.Errorf("insert %s: %w", t.Name, err)
	}
	query := "INSERT INTO " + t.ident() + " (" + strings.Join(t.quotedColumns(), ", ") +
		") VALUES (" + placeholders(len(vals)) + ")"
	return s.write(ctx, t, r, "insert", func(tx pgx.Tx) (string, error) {
		_, err := tx.Exec(ctx, query, vals...)
		return OpCreate, err
	})
}

// Upsert inserts r or, if its id exists, replaces every column of that row.
func (s *Store) Upsert(ctx context.Context, t Table, r Row) (Change, error) {
	vals, err := t.values(r)
	if err != nil {
		return Change{}, fmt.Errorf("upsert %s: %w", t.Name, err)
	}
	cols := t.quotedColumns()
	sets := make([]string, 0, len(cols)-1)
	for _, c := range cols[1:] {
		sets = append(sets, c+" = EXCLUDED."+c)
	}
	// xmax is 0 on a freshly inserted row version, set on an updated one.
	query := "INSERT INTO " + t.ident() + " (" + strings.Join(cols, ", ") +
		") VALUES (" + placeholders(len(vals)) + ") ON CONFLICT (id) DO UPDATE SET " +
		strings.Join(sets, ", ") + " RETURNING xmax = 0"
	return s.write(ctx, t, r, "upsert", func(tx pgx.Tx) (string, error) {
		var inserted bool
		if err := tx.QueryRow(ctx, query, vals...).Scan(&inserted); err != nil {
			return "", err
		}
		if inserted {
			return OpCreate, nil
		}
		return OpUpdate, nil
	})
}

// Update replaces every column of the row with r.ID; ErrNotFound if absent.
func (s *Store) Update(ctx context.Context, t Table, r Row) (Change, error) {
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
	return s.write(ctx, t, r, "update", func(tx pgx.Tx) (string, error) {
		tag, err := tx.Exec(ctx, query, vals...)
		if err != nil {
			return "", err
		}
		if tag.RowsAffected() == 0 {
			return "", ErrNotFound
		}
		return OpUpdate, nil
	})
}

// Delete removes the row with id. An absent id is not an error: it returns
// Change{} and records no event. A row still referred to by children gives
// *ReferencedError.
func (s *Store) Delete(ctx context.Context, t Table, id string) (Change, error) {
	if !isUUID(id) {
		return Change{}, nil
	}
	query := "DELETE FROM " + t.ident() + " WHERE id = $1"
	return s.write(ctx, t, Row{ID: id}, "delete", func(tx pgx.Tx) (string, error) {
		tag, err := tx.Exec(ctx, query, id)
		if err != nil || tag.RowsAffected() == 0 {
			return "", err
		}
		return OpDelete, nil
	})
}

// write runs change in a transaction and, if it changed a row (it returns
// an op), records a cluster_events row in the same transaction.
func (s *Store) write(ctx context.Context, t Table, r Row, verb string, change func(pgx.Tx) (string, error)) (Change, error) {
	c := Change{Table: t.Name, ID: r.ID}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		op, err := change(tx)
		if err != nil || op == "" {
			return err
		}
		c.Op = op
		return tx.QueryRow(ctx, insertEvent, s.nodeID, t.Name, r.ID, op).Scan(&c.EventID)
	})
	if err != nil {
		return Change{}, fmt.Errorf("%s %s %s: %w", verb, t.Name, r.ID, writeError(t, r, err))
	}
	if c.Op == "" {
		return Change{}, nil
	}
	return c, nil
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
		return uniqueError(t, r, pgErr.ConstraintName)
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
// <table>_<column>_key) back to the entity field.
func uniqueError(t Table, r Row, constraint string) error {
	if constraint == t.Name+"_pkey" {
		return &PrimaryKeyError{Table: t.Name, ID: r.ID}
	}
	if t.KeyField != "" && constraint == t.Name+"_"+t.KeyField+"_key" {
		value := ""
		if r.Key != nil {
			value = *r.Key
		}
		return &UniqueError{Table: t.Name, Field: t.KeyField, Value: value}
	}
	return &UniqueError{Table: t.Name, Field: constraint}
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
