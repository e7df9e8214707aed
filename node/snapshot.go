package node

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/store"
)

// Apply makes a committed change live on this node: the Admin API calls it
// after its transaction commits and before it answers, so the next request
// to this node's proxy already sees the change.
func (n *Node) Apply(ctx context.Context, change store.Change) error {
	if err := n.reload(ctx); err != nil {
		return fmt.Errorf("applying %s %s %s: %w", change.Op, change.Table, change.ID, err)
	}
	return nil
}

// reload reads the whole configuration and swaps in a new snapshot.
func (n *Node) reload(ctx context.Context) error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	snap, err := n.loadSnapshot(ctx)
	if err != nil {
		return err
	}
	if n.proxy != nil {
		n.proxy.Swap(snap)
	}
	return nil
}

// loadSnapshot reads services and routes from the store and builds the
// proxy's routing snapshot from them.
func (n *Node) loadSnapshot(ctx context.Context) (*proxy.Snapshot, error) {
	services, err := loadAll[entity.Service](ctx, n.store, store.Services)
	if err != nil {
		return nil, err
	}
	routes, err := loadAll[entity.Route](ctx, n.store, store.Routes)
	if err != nil {
		return nil, err
	}
	snap, warnings := proxy.NewSnapshot(services, routes)
	for _, w := range warnings {
		n.log.Warn().Err(w).Msg("route left out of the snapshot")
	}
	return snap, nil
}

func loadAll[T any](ctx context.Context, st *store.Store, table store.Table) ([]T, error) {
	rows, err := st.All(ctx, table)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", table.Name, err)
	}
	out := make([]T, len(rows))
	for i, row := range rows {
		if err := json.Unmarshal(row.Doc, &out[i]); err != nil {
			return nil, fmt.Errorf("decoding %s %s: %w", table.Name, row.ID, err)
		}
	}
	return out, nil
}
