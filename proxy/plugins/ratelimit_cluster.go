package plugins

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
)

// The rate-limiting cluster policy (kong/plugins/rate-limiting/policies/
// cluster.lua): the counts live in the database's ratelimiting_metrics,
// keyed like Kong's by identifier, period, window start and the plugin's
// service and route, so every node counts against one total. The check
// and the count are one database round trip (ClusterStore.TakeRateLimit).
//
// The request path waits on the database no longer than it must:
//   - a key whose window is used up is refused from memory until that
//     window ends (counts only grow within a window, so the answer cannot
//     change), so a client hammering past its limit costs no queries;
//   - each call is bounded by the database timeout (pg_timeout);
//   - after a failed call, calls fail at once for dbRetryPause instead of
//     each waiting out the timeout again; fault_tolerant then decides
//     whether requests go through (Kong's default) or get Kong's 500.

// ClusterStore is the database side of the cluster policy; the node hands
// in its store (the proxy never imports the store).
type ClusterStore interface {
	// TakeRateLimit counts one request of identifier in every window
	// unless one is used up already (then in none) and returns each
	// window's count before it. serviceID and routeID are the plugin's
	// scope, "" for none.
	TakeRateLimit(ctx context.Context, identifier, serviceID, routeID string, windows []RateWindow) ([]int64, error)
	// ResponseRateLimitUsage is response-ratelimiting's count of the
	// limit name for identifier in each window.
	ResponseRateLimitUsage(ctx context.Context, identifier, serviceID, routeID, name string, windows []RateWindow) ([]int64, error)
	// IncrementResponseRateLimit adds by to that count in each window.
	IncrementResponseRateLimit(ctx context.Context, identifier, serviceID, routeID, name string, windows []RateWindow, by int64) error
}

// RateWindow is one period's current window.
type RateWindow struct {
	Period     string // "second" … "year", as Kong stores them
	Start, End time.Time
	Limit      float64
}

// dbRetryPause is how long after a failed call a remote policy answers
// without trying its data store.
const dbRetryPause = time.Second

// errNoDatabase is the error of a node without a database.
var errNoDatabase = errors.New("rate-limiting policy cluster needs a database")

// dbHealth remembers the last failure of a remote policy's data store,
// shared by every instance that uses the same one.
type dbHealth struct {
	failedUntil atomic.Int64 // unix ns; calls before it fail at once
	mu          sync.Mutex   // guards lastErr
	lastErr     error
}

func (h *dbHealth) down(now time.Time) error {
	if now.UnixNano() >= h.failedUntil.Load() {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Errorf("failed less than %s ago, not retried yet: %w", dbRetryPause, h.lastErr)
}

func (h *dbHealth) failed(now time.Time, err error) {
	h.mu.Lock()
	h.lastErr = err
	h.mu.Unlock()
	h.failedUntil.Store(now.Add(dbRetryPause).UnixNano())
}

// storeCalls bounds a remote policy's calls to its data store: each call
// waits at most timeout, and after a failed call the store is not tried
// again for dbRetryPause (health, shared by every instance using it).
type storeCalls struct {
	health  *dbHealth
	timeout time.Duration
}

// databaseCalls are calls to the node's database, bounded by pg_timeout.
func databaseCalls(env *Env) storeCalls {
	c := storeCalls{health: env.dbHealth(), timeout: env.DBTimeout}
	if c.timeout <= 0 {
		c.timeout = 5 * time.Second // pg_timeout's default
	}
	return c
}

// call runs fn under the timeout, unless the store failed just before.
func (c storeCalls) call(fn func(ctx context.Context) error) error {
	if err := c.health.down(time.Now()); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := fn(ctx); err != nil {
		c.health.failed(time.Now(), err)
		return err
	}
	return nil
}

// remotePolicy is a policy whose counts live in a data store shared by
// the nodes (the cluster and redis policies): take checks and counts in
// one call. It answers used-up windows from memory.
type remotePolicy struct {
	storeCalls
	take   func(ctx context.Context, identifier string, windows []RateWindow) ([]int64, error)
	usedUp usedUpCache
}

func newClusterPolicy(env *Env, p *entity.Plugin) (*remotePolicy, error) {
	if env.Cluster == nil {
		return nil, errNoDatabase
	}
	serviceID, routeID := pluginScope(p) // Kong's conf.service_id/route_id
	db := env.Cluster
	return &remotePolicy{storeCalls: databaseCalls(env),
		take: func(ctx context.Context, identifier string, windows []RateWindow) ([]int64, error) {
			return db.TakeRateLimit(ctx, identifier, serviceID, routeID, windows)
		}}, nil
}

func (rp *remotePolicy) takeRate(identifier string, limits *[numPeriods]float64, starts *[numPeriods]int64) (usage [numPeriods]float64, stop int, err error) {
	if usage, stop, ok := rp.usedUp.lookup(identifier, starts); ok {
		return usage, stop, nil
	}
	windows := make([]RateWindow, 0, numPeriods)
	periods := make([]int, 0, numPeriods)
	for p, limit := range limits {
		if limit == 0 {
			continue
		}
		w := rateWindow(p, starts)
		w.Limit = limit
		windows = append(windows, w)
		periods = append(periods, p)
	}
	var counts []int64
	err = rp.call(func(ctx context.Context) (err error) {
		counts, err = rp.take(ctx, identifier, windows)
		return err
	})
	if err != nil {
		return usage, -1, err
	}
	stop = -1
	for i, p := range periods {
		usage[p] = float64(counts[i])
		if limits[p]-usage[p] <= 0 {
			stop = p
		}
	}
	if stop >= 0 {
		rp.usedUp.store(identifier, starts, &usage, stop)
	}
	return usage, stop, nil
}

// periodKeys are the periods as Kong stores them.
var periodKeys = [numPeriods]string{"second", "minute", "hour", "day", "month", "year"}

// windowEnd is when the window of period p starting at start is over:
// months and years end at the next calendar boundary, not after Kong's
// fixed 30 or 365 days, so a counter is never dropped while it counts.
func windowEnd(p int, start time.Time) time.Time {
	switch p {
	case 4:
		return start.AddDate(0, 1, 0)
	case 5:
		return start.AddDate(1, 0, 0)
	}
	return start.Add(time.Duration(periodWindows[p]) * time.Second)
}

// usedUpCache remembers the identifiers refused for a used-up window,
// until that window ends.
type usedUpCache struct {
	mu sync.Mutex // guards m
	m  map[string]*usedUp
}

type usedUp struct {
	starts [numPeriods]int64
	usage  [numPeriods]float64
	stop   int
}

// usedUpSweepAt is the size at which store drops the entries whose window
// is over, so the cache follows the clients refused recently.
const usedUpSweepAt = 4096

func (c *usedUpCache) lookup(identifier string, starts *[numPeriods]int64) (usage [numPeriods]float64, stop int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[identifier]
	if e == nil {
		return usage, -1, false
	}
	if e.starts[e.stop] != starts[e.stop] {
		delete(c.m, identifier)
		return usage, -1, false
	}
	for p := range usage {
		if e.starts[p] == starts[p] {
			usage[p] = e.usage[p] // a window that started since counts 0
		}
	}
	return usage, e.stop, true
}

func (c *usedUpCache) store(identifier string, starts *[numPeriods]int64, usage *[numPeriods]float64, stop int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*usedUp{}
	}
	if len(c.m) >= usedUpSweepAt {
		for k, e := range c.m {
			if e.starts[e.stop] != starts[e.stop] {
				delete(c.m, k)
			}
		}
	}
	c.m[identifier] = &usedUp{starts: *starts, usage: *usage, stop: stop}
}
