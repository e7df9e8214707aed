package node

import (
	"context"
	"sync"
	"time"
)

// Database outage watch. The Admin API must answer a write with 503 at
// once while the database is down, not after pg_timeout. A stopped
// server refuses connections, so a write fails fast by itself; one that
// drops packets (a cable, a firewall, a hung host) leaves a query on a
// pooled connection waiting for its deadline. So the node probes the
// database on a connection outside the pool (store.Probe) every
// dbProbeInterval and, when a probe gets no answer within dbProbeTimeout,
// declares an outage: Admin API store calls in flight end at once and
// new ones fail without a round trip (admin.Config.DBOutage), until a
// probe is answered again. A write started in the 1.5 s before the
// outage is found waits at most that long.
const (
	dbProbeInterval = 500 * time.Millisecond
	// dbProbeTimeout is long next to a ping's round trip (well under a
	// millisecond on a LAN, a few under load), so a busy database is not
	// taken for a lost one.
	dbProbeTimeout = time.Second
)

// dbWatch holds the outage state; its zero value is "reachable".
type dbWatch struct {
	mu     sync.Mutex
	ctx    context.Context // ended while the database is unreachable
	cancel context.CancelFunc
}

// outage returns a context that ends when the database is found
// unreachable; while it is, the returned context has already ended.
func (w *dbWatch) outage() context.Context {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctx == nil {
		w.ctx, w.cancel = context.WithCancel(context.Background())
	}
	return w.ctx
}

// set records a probe's result and reports whether the state changed.
func (w *dbWatch) set(reachable bool) (changed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctx == nil {
		w.ctx, w.cancel = context.WithCancel(context.Background())
	}
	down := w.ctx.Err() != nil
	switch {
	case !reachable && !down:
		w.cancel()
		return true
	case reachable && down:
		w.ctx, w.cancel = context.WithCancel(context.Background())
		return true
	}
	return false
}

// dbWatchLoop probes the database until ctx ends.
func (n *Node) dbWatchLoop(ctx context.Context) {
	every(ctx, dbProbeInterval, func(time.Time) { n.probeDatabase(ctx) })
}

// databaseAnswered records that a database call succeeded: writes are
// taken again at once, not only after the next probe (a node switching
// from its cache to the database would otherwise refuse them meanwhile).
func (n *Node) databaseAnswered() {
	if n.dbw.set(true) {
		n.log.Info().Msg("the database answers again")
	}
}

// probeDatabase probes the database once and logs when it stops or starts
// answering.
func (n *Node) probeDatabase(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, min(dbProbeTimeout, n.dbTimeout()))
	err := n.store.Probe(pctx)
	cancel()
	switch {
	case ctx.Err() != nil:
	case err == nil:
		n.databaseAnswered()
	case n.dbw.set(false):
		n.log.Warn().Err(err).Msg("the database does not answer: Admin API writes answer 503 at once, the proxy serves the configuration it has")
	}
}
