package admin

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// A request's store calls end at the first of three: the request's
// context, DBTimeout, and the node finding the database unreachable
// (Config.DBOutage). Without the third, a database that drops packets
// (rather than refusing them) held every write for DBTimeout: the query
// went out on a pooled connection and no answer, reset or refusal ever
// came. Ended by an outage, a call fails as on its deadline, so the
// handlers answer Kong's 503 "database unavailable" as they already do.

// dbContext bounds a request's store calls so a dead database answers 503
// instead of hanging.
func (s *Server) dbContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.DBTimeout)
	if s.cfg.DBOutage == nil {
		return ctx, cancel
	}
	g := newOutageGate(ctx, s.cfg.DBOutage())
	return g, func() { g.release(); cancel() }
}

// outageGate is a context that ends with its parent, or with
// context.DeadlineExceeded once outage is done. (The context package has
// no way to pull a deadline in, and a plain cancel would read as the
// caller giving up, which is not an outage.)
type outageGate struct {
	parent context.Context
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	err    error
	stops  [2]func() bool
}

func newOutageGate(parent, outage context.Context) *outageGate {
	g := &outageGate{parent: parent, done: make(chan struct{})}
	if outage.Err() != nil { // known down: fail at once, no round trip
		g.end(context.DeadlineExceeded)
		return g
	}
	g.stops[0] = context.AfterFunc(parent, func() { g.end(parent.Err()) })
	g.stops[1] = context.AfterFunc(outage, func() { g.end(context.DeadlineExceeded) })
	return g
}

func (g *outageGate) end(err error) {
	g.once.Do(func() {
		g.mu.Lock()
		g.err = err
		g.mu.Unlock()
		close(g.done)
	})
}

// release drops the watches on the parent and the outage.
func (g *outageGate) release() {
	for _, stop := range g.stops {
		if stop != nil {
			stop()
		}
	}
}

func (g *outageGate) Deadline() (time.Time, bool) { return g.parent.Deadline() }
func (g *outageGate) Done() <-chan struct{}       { return g.done }
func (g *outageGate) Value(key any) any           { return g.parent.Value(key) }

func (g *outageGate) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}
