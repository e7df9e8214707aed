package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/luasandbox"
	"github.com/grapevine-gw/grapevine/internal/parallel"
	"github.com/grapevine-gw/grapevine/proxy/metrics"
	"github.com/grapevine-gw/grapevine/proxy/plugins"
	"github.com/grapevine-gw/grapevine/store"
)

// The plugins' side of the applier: plugin entities are compiled into the
// proxy's snapshot like routes, while consumers and credentials go to the
// credential index (plugins.Index) and never cause a snapshot rebuild, so a
// million of them cost a route change nothing.

// indexTables are the tables the credential index holds.
func indexTables() []store.Table {
	out := make([]store.Table, 0, len(plugins.IndexTables))
	for _, name := range plugins.IndexTables {
		if t, ok := store.TableByName(name); ok {
			out = append(out, t)
		}
	}
	return out
}

func isIndexTable(name string) bool { return slices.Contains(plugins.IndexTables, name) }

// newState is an empty configuration state that compiles plugins with the
// applier's plugin environment.
func (a *applier) newState() *configState {
	s := newConfigState()
	if a.plugins != nil {
		env := a.plugins
		s.compile = plugins.NewCompiler(env).Compile
		// A whole configuration is compiled again after this: the
		// prometheus plugins it has are tracked again then.
		env.Metrics.ForgetAll()
		s.forget = env.Metrics.Forget
	}
	return s
}

// takeIndexRows moves the index tables' rows out of a full load into a
// fresh index.
func (a *applier) takeIndexRows(rows map[string][]store.Row) error {
	var values []any
	for _, name := range plugins.IndexTables {
		list, ok := rows[name]
		if !ok {
			continue
		}
		delete(rows, name)
		k, _ := entity.KindByName(name)
		// Decoded on every core, as decodeRows does the other tables:
		// a consumer and a key per service is most of a big import.
		decoded := make([]any, len(list))
		err := parallel.For(len(list), func(i int) error {
			v, err := k.Decode(list[i].Doc)
			if err != nil {
				return fmt.Errorf("decoding %s %s: %w", name, list[i].ID, err)
			}
			decoded[i] = indexed(v, list[i])
			return nil
		})
		if err != nil {
			return err
		}
		values = append(values, decoded...)
	}
	if a.plugins != nil {
		a.plugins.Index.Replace(values)
	}
	return nil
}

// reloadIndexed re-reads one consumer or credential into the index.
func (a *applier) reloadIndexed(ctx context.Context, key entityKey) error {
	t, _ := store.TableByName(key.Table)
	ctx, cancel := context.WithTimeout(ctx, a.dbTimeout)
	defer cancel()
	row, err := a.store.Get(ctx, t, key.ID)
	if errors.Is(err, store.ErrNotFound) {
		a.plugins.Index.Remove(key.Table, key.ID)
		a.dropDoc(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reloading %s %s: %w", key.Table, key.ID, err)
	}
	k, _ := entity.KindByName(key.Table)
	v, err := k.Decode(row.Doc)
	if err != nil {
		return fmt.Errorf("decoding %s %s: %w", key.Table, key.ID, err)
	}
	a.plugins.Index.Put(indexed(v, row))
	a.setDoc(key, cachedDoc(key.Table, row))
	return nil
}

// indexed is what the index files for a decoded row: the entity, with
// its expiry when it was written with a ttl.
func indexed(v any, row store.Row) any {
	if row.Expires == nil {
		return v
	}
	return plugins.Expiring{Value: v, Expires: *row.Expires}
}

// clusterCounters hands the store to the rate-limiting cluster policy
// (the proxy never imports the store).
type clusterCounters struct{ s *store.Store }

func (c clusterCounters) TakeRateLimit(ctx context.Context, identifier, serviceID, routeID string, windows []plugins.RateWindow) ([]int64, error) {
	return c.s.TakeRateLimit(ctx, identifier, serviceID, routeID, storeWindows(windows))
}

func (c clusterCounters) ResponseRateLimitUsage(ctx context.Context, identifier, serviceID, routeID, name string, windows []plugins.RateWindow) ([]int64, error) {
	return c.s.ResponseRateLimitUsage(ctx, identifier, serviceID, routeID, name, storeWindows(windows))
}

func (c clusterCounters) IncrementResponseRateLimit(ctx context.Context, identifier, serviceID, routeID, name string, windows []plugins.RateWindow, by int64) error {
	return c.s.IncrementResponseRateLimit(ctx, identifier, serviceID, routeID, name, storeWindows(windows), by)
}

func storeWindows(windows []plugins.RateWindow) []store.RateWindow {
	w := make([]store.RateWindow, len(windows))
	for i, x := range windows {
		w[i] = store.RateWindow{Period: x.Period, Start: x.Start, End: x.End, Limit: x.Limit}
	}
	return w
}

// pluginEnv is what the node's compiled plugins share. It also sets the
// process's untrusted_lua settings, which the schemas check Lua against.
func (n *Node) pluginEnv() *plugins.Env {
	luasandbox.Configure(luasandbox.Settings{Mode: n.cfg.UntrustedLua,
		Requires: n.cfg.UntrustedLuaRequires, Environment: n.cfg.UntrustedLuaEnvironment})
	log := n.log.With().Str("component", "plugins").Logger()
	env := &plugins.Env{Index: plugins.NewIndex(), DBTimeout: n.dbTimeout(), Log: &log, Metrics: metrics.New(), NodeID: n.id}
	env.Hostname, _ = os.Hostname()
	if n.store != nil {
		env.Cluster = clusterCounters{n.store}
	}
	return env
}
