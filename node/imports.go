package node

import (
	"context"
	"time"

	"github.com/grapevine-gw/grapevine/gossip"
	"github.com/grapevine-gw/grapevine/store"
)

// importListener makes a whole import (`grapevine config db_import`,
// store.UpsertAll) live on this node as soon as it commits: the importing
// command is no gossip member, so the import's transaction notifies every
// node listening on PostgreSQL (store.ReloadChannel), and the event goes
// to the applier as a hint would. A connection that fails is opened again
// with backoff; meanwhile polling picks the import up.
func (n *Node) importListener(ctx context.Context) {
	wait := firstDBRetry
	for {
		err := n.store.ListenReloads(ctx, func() { wait = firstDBRetry }, n.onImport)
		if ctx.Err() != nil {
			return
		}
		n.log.Debug().Err(err).Dur("retry_in", wait).Msg("listening for imports failed; polling picks them up meanwhile")
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, maxDBRetry)
	}
}

// onImport queues the reload of an import committed as event id.
func (n *Node) onImport(id int64) {
	n.onHint(gossip.Hint{EventID: id, Table: store.ReloadAllTable, ID: store.ReloadAllID, Op: store.OpUpdate})
}
