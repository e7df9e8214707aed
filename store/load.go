package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

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
	return s.LoadConfigBounded(ctx, tables, window, 0)
}

// loadPageRows is how many rows one query of a load reads: a table of a
// million consumers is read in pages, each a bounded call.
const loadPageRows = 10000

// LoadConfigBounded is LoadConfig with each database call (the begin, a
// page of loadPageRows rows, the events, the commit) bounded by perCall
// (0: by ctx alone), instead of the whole load: a configuration of any
// size loads, while a database that stops answering still fails the load
// within perCall.
func (s *Store) LoadConfigBounded(ctx context.Context, tables []Table, window int64, perCall time.Duration) (ConfigLoad, error) {
	return s.loadBounded(ctx, tables, window, perCall, false)
}

// LoadDocsBounded is LoadConfigBounded reading only what a node serves
// from: each row's ID, Doc and Expires (the other fields stay empty).
// Half the columns of a row are indexes for the Admin API's lookups; a
// full reload of ten thousand services spent a third of its database read
// scanning them.
func (s *Store) LoadDocsBounded(ctx context.Context, tables []Table, window int64, perCall time.Duration) (ConfigLoad, error) {
	return s.loadBounded(ctx, tables, window, perCall, true)
}

func (s *Store) loadBounded(ctx context.Context, tables []Table, window int64, perCall time.Duration, docsOnly bool) (ConfigLoad, error) {
	load, err := s.loadConfigBounded(ctx, tables, window, perCall, docsOnly)
	if err != nil {
		return ConfigLoad{}, fmt.Errorf("load config: %w", classify(err))
	}
	return load, nil
}

func (s *Store) loadConfigBounded(ctx context.Context, tables []Table, window int64, perCall time.Duration, docsOnly bool) (ConfigLoad, error) {
	cctx, cancel := bound(ctx, perCall)
	tx, err := s.pool.BeginTx(cctx, snapshotTx)
	cancel()
	if err != nil {
		return ConfigLoad{}, err
	}
	defer func() {
		// Read-only: after a commit this does nothing, after an error it
		// ends the transaction (bounded, as every call).
		cctx, cancel := bound(context.WithoutCancel(ctx), max(perCall, time.Second))
		_ = tx.Rollback(cctx)
		cancel()
	}()
	load, err := loadConfigTx(ctx, tx, tables, window, perCall, docsOnly)
	if err != nil {
		return ConfigLoad{}, err
	}
	cctx, cancel = bound(ctx, perCall)
	defer cancel()
	return load, tx.Commit(cctx)
}

// loadConfigTx does LoadConfig's reads inside tx.
func loadConfigTx(ctx context.Context, tx pgx.Tx, tables []Table, window int64, perCall time.Duration, docsOnly bool) (ConfigLoad, error) {
	window = max(window, 0) // a negative window means none, not an overflow
	load := ConfigLoad{Rows: make(map[string][]Row, len(tables))}
	for _, t := range tables {
		rows, err := readAllPaged(ctx, tx, t, perCall, docsOnly)
		if err != nil {
			return ConfigLoad{}, fmt.Errorf("read all %s: %w", t.Name, err)
		}
		load.Rows[t.Name] = rows
	}
	var err error
	cctx, cancel := bound(ctx, perCall)
	defer cancel()
	if load.MaxEventID, err = latestEventID(cctx, tx); err != nil {
		return ConfigLoad{}, fmt.Errorf("read latest event id: %w", err)
	}
	load.RecentEvents, err = queryEvents(cctx, tx, "WHERE id > $1 ORDER BY id", load.MaxEventID-window)
	if err != nil {
		return ConfigLoad{}, fmt.Errorf("read recent events: %w", err)
	}
	return load, nil
}

// readAllPaged reads the whole of t through a cursor, loadPageRows at a
// time, each FETCH one call bounded by perCall, and returns it in id order
// (sorted here: ORDER BY on a table of random uuids makes PostgreSQL sort
// it whole, and paging by id makes it do so for every page).
func readAllPaged(ctx context.Context, tx pgx.Tx, t Table, perCall time.Duration, docsOnly bool) ([]Row, error) {
	const cursor = "grapevine_load"
	list, scan := t.selectList(), func(row pgx.CollectableRow) (Row, error) { return t.scanRow(row) }
	if docsOnly {
		list, scan = t.docList(), t.scanDoc
	}
	cctx, cancel := bound(ctx, perCall)
	_, err := tx.Exec(cctx, "DECLARE "+cursor+" NO SCROLL CURSOR FOR SELECT "+list+" FROM "+t.from())
	cancel()
	if err != nil {
		return nil, err
	}
	fetch := "FETCH " + strconv.Itoa(loadPageRows) + " FROM " + cursor
	// Each page is appended where it goes: collected apart and copied,
	// the pages of a big table made a tenth of a full reload's garbage.
	var out []Row
	for {
		cctx, cancel := bound(ctx, perCall)
		before := len(out)
		var err error
		out, err = appendScanned(cctx, tx, out, scan, fetch, pgx.QueryExecModeExec)
		cancel()
		if err != nil {
			return nil, err
		}
		if len(out)-before < loadPageRows {
			break
		}
	}
	cctx, cancel = bound(ctx, perCall)
	_, err = tx.Exec(cctx, "CLOSE "+cursor)
	cancel()
	if err != nil {
		return nil, err
	}
	sortByID(out)
	return out, nil
}

// sortByID sorts rows by id (uuids as lower-case text sort as PostgreSQL
// sorts the uuids) moving each row once: sorted in place, each row of
// 120 bytes was swapped a dozen times, a twentieth of a full reload.
func sortByID(rows []Row) {
	// Sorted by the ids' first eight bytes, read as a big-endian number
	// (the order of the bytes), the ids compared only on a tie: compared
	// through the rows, every comparison missed the cache.
	type sortKey struct {
		prefix uint64
		row    int32
	}
	keys := make([]sortKey, len(rows))
	for i := range rows {
		var head [8]byte
		copy(head[:], rows[i].ID)
		keys[i] = sortKey{binary.BigEndian.Uint64(head[:]), int32(i)}
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if c := cmp.Compare(a.prefix, b.prefix); c != 0 {
			return c
		}
		return strings.Compare(rows[a.row].ID, rows[b.row].ID)
	})
	from := make([]int32, len(rows)) // from[i]: the row that goes to i
	for i, k := range keys {
		from[i] = k.row
	}
	// Apply the permutation cycle by cycle; -1 marks a place filled.
	for i := range from {
		if from[i] < 0 {
			continue
		}
		first := rows[i]
		j := i
		for {
			k := int(from[j])
			from[j] = -1
			if k == i {
				rows[j] = first
				break
			}
			rows[j] = rows[k]
			j = k
		}
	}
}

// bound is ctx with a timeout of perCall, or ctx itself for 0.
func bound(ctx context.Context, perCall time.Duration) (context.Context, context.CancelFunc) {
	if perCall <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, perCall)
}
