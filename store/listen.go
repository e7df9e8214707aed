package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReloadChannel is the PostgreSQL notification channel a whole import
// (UpsertAll) notifies, with its cluster_events id as the payload. The
// importing command is no gossip member; through LISTEN/NOTIFY every node
// connected to the database learns of the commit at once, instead of on
// its next poll (which stays the safety net for a node whose listening
// connection was down at the time).
const ReloadChannel = "grapevine_reload"

// ListenReloads holds a connection of its own (not one of the pool's)
// listening on ReloadChannel and calls fn with the event id of each
// import committed, until ctx ends or the connection fails; the caller
// reconnects. ready, if not nil, is called once the LISTEN is in place.
func (s *Store) ListenReloads(ctx context.Context, ready func(), fn func(eventID int64)) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("listen for imports: %w", classify(err))
	}
	defer func() {
		// Bounded: a database that stopped answering must not hold a
		// node's shutdown.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ReloadChannel}.Sanitize()); err != nil {
		return fmt.Errorf("listen for imports: %w", classify(err))
	}
	if ready != nil {
		ready()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("listen for imports: %w", classify(err))
		}
		id, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil {
			continue // not ours: the payload is always an event id
		}
		fn(id)
	}
}
