package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

const insertEvent = `INSERT INTO cluster_events (node_id, entity, entity_id, op)
VALUES ($1, $2, $3::uuid, $4) RETURNING id`

// DefaultEventsLimit is EventsSince's page when limit is 0 or less.
const DefaultEventsLimit = 1000

// Event is one cluster_events row: entity EntityID of table Table changed
// by Op on node NodeID.
type Event struct {
	ID       int64
	NodeID   string
	Table    string
	EntityID string
	Op       string
	At       time.Time
}

// EventsSince returns up to limit events with id > afterID, in id order.
// Ids come from a sequence, so a transaction that commits late can add an
// id below one already seen: callers track gaps, not only the highest id.
func (s *Store) EventsSince(ctx context.Context, afterID int64, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = DefaultEventsLimit
	}
	events, err := queryEvents(ctx, s.pool, "WHERE id > $1 ORDER BY id LIMIT $2", afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("read cluster events: %w", err)
	}
	return events, nil
}

// EventsByID returns the events among ids that exist, in id order. A node
// checks gossip hints with it: a hint is sent after its commit, so the
// event of a real one is visible by the time it arrives.
func (s *Store) EventsByID(ctx context.Context, ids []int64) ([]Event, error) {
	events, err := queryEvents(ctx, s.pool, "WHERE id = ANY($1) ORDER BY id", ids)
	if err != nil {
		return nil, fmt.Errorf("read cluster events by id: %w", err)
	}
	return events, nil
}

// queryEvents selects the events matching tail (WHERE, ORDER BY, LIMIT).
func queryEvents(ctx context.Context, q querier, tail string, args ...any) ([]Event, error) {
	rows, err := q.Query(ctx, "SELECT id, node_id, entity, entity_id::text, op, at FROM cluster_events "+tail, args...)
	if err != nil {
		return nil, classify(err)
	}
	events, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, classify(err)
	}
	return events, nil
}

// LatestEventID returns the highest event id, 0 if there is none. A node
// that loads a full snapshot takes it first, then polls from it.
func (s *Store) LatestEventID(ctx context.Context) (int64, error) {
	id, err := latestEventID(ctx, s.pool)
	if err != nil {
		return 0, fmt.Errorf("read latest event id: %w", err)
	}
	return id, nil
}

func latestEventID(ctx context.Context, q querier) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM cluster_events").Scan(&id)
	return id, classify(err)
}

func scanEvent(row pgx.CollectableRow) (Event, error) {
	var e Event
	err := row.Scan(&e.ID, &e.NodeID, &e.Table, &e.EntityID, &e.Op, &e.At)
	return e, err
}
