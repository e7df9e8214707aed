package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ConfigLoad is one consistent read of the configuration tables.
type ConfigLoad struct {
	Rows         map[string][]Row // table name -> all rows, ordered by id
	MaxEventID   int64            // highest cluster_events id visible in the same snapshot (0 if none)
	RecentEvents []Event          // events visible in the same snapshot with id > MaxEventID - window
}

// snapshotTx is one database snapshot for every statement: REPEATABLE READ
// fixes it at the first query, read-only because LoadConfig only reads.
var snapshotTx = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// LoadConfig reads every row of tables and the tail of cluster_events from
// one snapshot, so the rows reflect exactly the events up to MaxEventID that
// had committed. Sequence ids commit out of order: an id in
// (MaxEventID-window, MaxEventID] missing from RecentEvents belongs to a
// transaction still in flight (or rolled back), and the caller must watch
// for it rather than assume it was seen.
func (s *Store) LoadConfig(ctx context.Context, tables []Table, window int64) (ConfigLoad, error) {
	var load ConfigLoad
	err := pgx.BeginTxFunc(ctx, s.pool, snapshotTx, func(tx pgx.Tx) error {
		var err error
		load, err = loadConfigTx(ctx, tx, tables, window)
		return err
	})
	if err != nil {
		return ConfigLoad{}, fmt.Errorf("load config: %w", classify(err))
	}
	return load, nil
}

// loadConfigTx does LoadConfig's reads inside tx.
func loadConfigTx(ctx context.Context, tx pgx.Tx, tables []Table, window int64) (ConfigLoad, error) {
	window = max(window, 0) // a negative window means none, not an overflow
	load := ConfigLoad{Rows: make(map[string][]Row, len(tables))}
	for _, t := range tables {
		rows, err := queryRows(ctx, tx, t, t.selectAll())
		if err != nil {
			return ConfigLoad{}, fmt.Errorf("read all %s: %w", t.Name, err)
		}
		load.Rows[t.Name] = rows
	}
	var err error
	if load.MaxEventID, err = latestEventID(ctx, tx); err != nil {
		return ConfigLoad{}, fmt.Errorf("read latest event id: %w", err)
	}
	load.RecentEvents, err = queryEvents(ctx, tx, "WHERE id > $1 ORDER BY id", load.MaxEventID-window)
	if err != nil {
		return ConfigLoad{}, fmt.Errorf("read recent events: %w", err)
	}
	return load, nil
}
