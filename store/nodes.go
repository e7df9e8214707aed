package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// NodeRecord is one row of the nodes registry. StartedAt and LastSeen are
// set by the database clock; RegisterNode ignores the caller's values.
type NodeRecord struct {
	Name, ClusterAddr, ProxyAddr, AdminAddr, Hostname, Version string
	StartedAt, LastSeen                                        time.Time
}

const upsertNode = `INSERT INTO nodes
	(name, cluster_addr, proxy_addr, admin_addr, hostname, version, started_at, last_seen)
VALUES ($1, $2, $3, $4, $5, $6, now(), now())
ON CONFLICT (name) DO UPDATE SET
	cluster_addr = EXCLUDED.cluster_addr, proxy_addr = EXCLUDED.proxy_addr,
	admin_addr = EXCLUDED.admin_addr, hostname = EXCLUDED.hostname,
	version = EXCLUDED.version, started_at = now(), last_seen = now()`

// RegisterNode inserts n, or replaces the row of a node with the same name
// (a restart), with started_at and last_seen at the database's now().
func (s *Store) RegisterNode(ctx context.Context, n NodeRecord) error {
	if n.Name == "" {
		return errors.New("register node: empty name")
	}
	_, err := s.pool.Exec(ctx, upsertNode, n.Name, n.ClusterAddr, n.ProxyAddr, n.AdminAddr, n.Hostname, n.Version)
	if err != nil {
		return fmt.Errorf("register node %q: %w", n.Name, classify(err))
	}
	return nil
}

// TouchNode sets the node's last_seen to the database's now(). It never
// re-creates a purged row: that gives ErrNotFound, and the node should
// register again.
func (s *Store) TouchNode(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, "UPDATE nodes SET last_seen = now() WHERE name = $1", name)
	if err != nil {
		return fmt.Errorf("touch node %q: %w", name, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("touch node %q: %w", name, ErrNotFound)
	}
	return nil
}

// Nodes returns every registered node, ordered by name.
func (s *Store) Nodes(ctx context.Context) ([]NodeRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, cluster_addr, proxy_addr, admin_addr,
		hostname, version, started_at, last_seen FROM nodes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read nodes: %w", classify(err))
	}
	nodes, err := pgx.CollectRows(rows, scanNode)
	if err != nil {
		return nil, fmt.Errorf("read nodes: %w", classify(err))
	}
	return nodes, nil
}

func scanNode(row pgx.CollectableRow) (NodeRecord, error) {
	var n NodeRecord
	err := row.Scan(&n.Name, &n.ClusterAddr, &n.ProxyAddr, &n.AdminAddr,
		&n.Hostname, &n.Version, &n.StartedAt, &n.LastSeen)
	return n, err
}

// DeleteNode removes the node's row; an absent node is not an error.
func (s *Store) DeleteNode(ctx context.Context, name string) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM nodes WHERE name = $1", name); err != nil {
		return fmt.Errorf("delete node %q: %w", name, classify(err))
	}
	return nil
}

// PurgeNodes deletes the nodes whose last_seen is older than notSeenFor by
// the database clock, and returns how many it deleted.
func (s *Store) PurgeNodes(ctx context.Context, notSeenFor time.Duration) (int64, error) {
	n, err := s.purgeOlder(ctx, "nodes", "last_seen", notSeenFor)
	if err != nil {
		return 0, fmt.Errorf("purge nodes: %w", err)
	}
	return n, nil
}

// PurgeEvents deletes the cluster_events older than olderThan by the
// database clock, and returns how many it deleted. Nodes that were away
// longer than olderThan cannot catch up from events and must reload fully.
func (s *Store) PurgeEvents(ctx context.Context, olderThan time.Duration) (int64, error) {
	n, err := s.purgeOlder(ctx, "cluster_events", "at", olderThan)
	if err != nil {
		return 0, fmt.Errorf("purge cluster events: %w", err)
	}
	return n, nil
}

// purgeOlder deletes the rows of table whose column is before now() - age.
// Comparing in SQL against now() keeps node clocks, however skewed, out of
// it. A negative age would reach into the future and delete live rows.
func (s *Store) purgeOlder(ctx context.Context, table, column string, age time.Duration) (int64, error) {
	if age < 0 {
		return 0, fmt.Errorf("negative age %v", age)
	}
	query := "DELETE FROM " + pgx.Identifier{table}.Sanitize() + " WHERE " +
		pgx.Identifier{column}.Sanitize() + " < now() - make_interval(secs => $1)"
	tag, err := s.pool.Exec(ctx, query, age.Seconds())
	if err != nil {
		return 0, classify(err)
	}
	return tag.RowsAffected(), nil
}
