package plugins

import (
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// rate-limiting (kong/plugins/rate-limiting/handler.lua) with the local
// and cluster policies: one window per period (second … year, starting at
// the UTC calendar boundaries of kong/tools/timestamp.lua). The local
// policy counts per plugin instance and identifier in this process; the
// cluster policy in the database (ratelimit_cluster.go). Unlike Kong, which
// reads the usage and increments it later in a timer, each policy checks
// and counts in one step, so concurrent clients against a limit of L get
// exactly L through: on one node (local) or across the cluster (cluster).

func init() { register("rate-limiting", buildRateLimit) }

type rateLimitConfig struct {
	Second            *float64    `json:"second"`
	Minute            *float64    `json:"minute"`
	Hour              *float64    `json:"hour"`
	Day               *float64    `json:"day"`
	Month             *float64    `json:"month"`
	Year              *float64    `json:"year"`
	LimitBy           string      `json:"limit_by"`
	HeaderName        *string     `json:"header_name"`
	Path              *string     `json:"path"`
	Policy            string      `json:"policy"`
	FaultTolerant     bool        `json:"fault_tolerant"`
	Redis             redisConfig `json:"redis"`
	HideClientHeaders bool        `json:"hide_client_headers"`
	ErrorCode         float64     `json:"error_code"`
	ErrorMessage      string      `json:"error_message"`
}

const numPeriods = 6

// periodNames and periodWindows are the periods in Kong's order and their
// windows in seconds (kong/plugins/rate-limiting/expiration.lua).
var (
	periodNames   = [numPeriods]string{"Second", "Minute", "Hour", "Day", "Month", "Year"}
	periodWindows = [numPeriods]int64{1, 60, 3600, 86400, 2592000, 31536000}
)

// periodStarts are the starts of the current windows of now, in Unix ms.
func periodStarts(now time.Time) [numPeriods]int64 {
	t := now.UTC()
	y, mo, d := t.Date()
	return [numPeriods]int64{
		t.Truncate(time.Second).UnixMilli(),
		t.Truncate(time.Minute).UnixMilli(),
		t.Truncate(time.Hour).UnixMilli(),
		time.Date(y, mo, d, 0, 0, 0, 0, time.UTC).UnixMilli(),
		time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC).UnixMilli(),
		time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(),
	}
}

type rateLimit struct {
	c       rateLimitConfig
	limits  [numPeriods]float64 // 0: the period is not limited
	status  int
	headers [numPeriods][2]string // X-RateLimit-Limit-<P>, X-RateLimit-Remaining-<P>
	policy  ratePolicy
	env     *Env
	logged  sampled // failures of the policy's data store
}

// ratePolicy counts one request of identifier against limits unless a
// period's limit is used up already; it returns each period's usage
// before this request and the first period used up (-1 when the request
// is let through). An error means the policy's data store could not
// answer (the handler's "failed to get usage").
type ratePolicy interface {
	takeRate(identifier string, limits *[numPeriods]float64, starts *[numPeriods]int64) (usage [numPeriods]float64, stop int, err error)
}

func buildRateLimit(env *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	rl := &rateLimit{env: env}
	if err := decodeConfig(p, &rl.c); err != nil {
		return hooks, err
	}
	switch rl.c.Policy {
	case "local":
		rl.policy = localPolicy{id: p.ID, counters: env.counters()}
	case "cluster":
		rp, err := newClusterPolicy(env, p)
		if err != nil {
			return hooks, err
		}
		rl.policy = rp
	case "redis":
		rp, err := newRedisPolicy(env, p, &rl.c.Redis)
		if err != nil {
			return hooks, err
		}
		rl.policy = rp
	default:
		return hooks, errString("rate-limiting policy " + rl.c.Policy + " does not run on the proxy yet")
	}
	for i, v := range []*float64{rl.c.Second, rl.c.Minute, rl.c.Hour, rl.c.Day, rl.c.Month, rl.c.Year} {
		if v != nil {
			rl.limits[i] = *v
		}
		rl.headers[i] = [2]string{"X-RateLimit-Limit-" + periodNames[i], "X-RateLimit-Remaining-" + periodNames[i]}
	}
	rl.status = int(rl.c.ErrorCode)
	hooks[proxy.PhaseAccess] = rl.access
	return hooks, nil
}

// identifier is the handler's get_identifier.
func (rl *rateLimit) identifier(x pdk.Exchange) string {
	switch rl.c.LimitBy {
	case "service":
		if id := x.ServiceID(); id != "" {
			return id
		}
	case "consumer":
		if c := x.Consumer(); c != nil {
			return c.ID
		}
		if c := x.Credential(); c != nil {
			return c.ID
		}
	case "credential":
		if c := x.Credential(); c != nil {
			return c.ID
		}
	case "header":
		if v, n := x.Header(deref(rl.c.HeaderName)); n > 0 {
			return string(v)
		}
	case "path":
		if rl.c.Path != nil && string(x.Path()) == *rl.c.Path {
			return *rl.c.Path
		}
	}
	return x.ClientIP().String()
}

func (rl *rateLimit) access(x pdk.Exchange) {
	now := time.Now()
	starts := periodStarts(now)
	usage, stop, err := rl.policy.takeRate(rl.identifier(x), &rl.limits, &starts)
	if err != nil {
		// The handler: without fault_tolerant the error ends the request
		// (Kong's 500); with it the request goes on unlimited and without
		// headers, and the failure is logged.
		if !rl.c.FaultTolerant {
			x.Error(500, msgUnexpected)
			return
		}
		if ok, dropped := rl.logged.allow(now); ok {
			rl.env.logger().Error().Err(err).Int64("failures_not_logged", dropped).
				Str("plugin", "rate-limiting").Str("policy", rl.c.Policy).Msg("failed to get usage; letting requests through (fault_tolerant)")
		}
		return
	}
	if !rl.c.HideClientHeaders {
		rl.setHeaders(x, now, &starts, &usage, stop)
	}
	if stop >= 0 {
		x.Error(rl.status, rl.c.ErrorMessage)
	}
}

// setHeaders sends the limits and what remains of them, and for the
// tightest one RateLimit-* (and Retry-After when refused), as the handler
// does.
func (rl *rateLimit) setHeaders(x pdk.Exchange, now time.Time, starts *[numPeriods]int64, usage *[numPeriods]float64, stop int) {
	best, bestRemaining := -1, 0.0
	for p, limit := range rl.limits {
		if limit == 0 {
			continue
		}
		remaining := limit - usage[p]
		if stop < 0 || stop == p {
			remaining--
		}
		remaining = max(0, remaining)
		if best < 0 || remaining < bestRemaining || remaining == bestRemaining && periodWindows[p] > periodWindows[best] {
			best, bestRemaining = p, remaining
		}
		x.SetResponseHeader(rl.headers[p][0], formatNumber(limit))
		x.SetResponseHeader(rl.headers[p][1], formatNumber(remaining))
	}
	if best < 0 {
		return
	}
	elapsed := (now.UnixMilli() - starts[best]) / 1000
	reset := strconv.FormatInt(max(1, periodWindows[best]-elapsed), 10)
	x.SetResponseHeader("RateLimit-Limit", formatNumber(rl.limits[best]))
	x.SetResponseHeader("RateLimit-Remaining", formatNumber(bestRemaining))
	x.SetResponseHeader("RateLimit-Reset", reset)
	if stop >= 0 {
		x.SetResponseHeader("Retry-After", reset)
	}
}

func formatNumber(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// LocalCounters are the local policy's counters, kept across snapshots
// (a plugin's counts survive its config changing) in shards so requests
// of different clients rarely wait for each other.
type LocalCounters struct {
	seed   maphash.Seed
	shards [64]counterShard
}

type counterShard struct {
	mu    sync.Mutex // guards m and swept
	m     map[string]*counter
	swept int // len(m) at the last sweep
}

// counter is one identifier's usage in the current window of each period.
type counter struct {
	start [numPeriods]int64 // window start, Unix ms
	count [numPeriods]float64
}

// NewLocalCounters returns empty counters.
func NewLocalCounters() *LocalCounters {
	lc := &LocalCounters{seed: maphash.MakeSeed()}
	for i := range lc.shards {
		lc.shards[i].m = map[string]*counter{}
	}
	return lc
}

func (e *Env) counters() *LocalCounters {
	e.once.Do(func() {
		if e.Counters == nil {
			e.Counters = NewLocalCounters()
		}
	})
	return e.Counters
}

// localPolicy counts in this process's LocalCounters.
type localPolicy struct {
	id       string // the plugin's, so each instance counts on its own
	counters *LocalCounters
}

func (lp localPolicy) takeRate(identifier string, limits *[numPeriods]float64, starts *[numPeriods]int64) ([numPeriods]float64, int, error) {
	usage, stop := lp.counters.take(lp.id+"\x00"+identifier, limits, starts)
	return usage, stop, nil
}

// take counts one request of key against limits unless a period's limit
// is used up already; it returns each period's usage before this request
// and the first period used up (-1 when the request is let through).
func (lc *LocalCounters) take(key string, limits *[numPeriods]float64, starts *[numPeriods]int64) (usage [numPeriods]float64, stop int) {
	sh := lc.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.counterLocked(key, starts)
	stop = -1
	for p, limit := range limits {
		if limit == 0 {
			continue
		}
		if c.start[p] != starts[p] {
			c.start[p], c.count[p] = starts[p], 0
		}
		usage[p] = c.count[p]
		if limit-usage[p] <= 0 {
			stop = p
		}
	}
	if stop < 0 {
		for p, limit := range limits {
			if limit != 0 {
				c.count[p]++
			}
		}
	}
	return usage, stop
}

// shard is the shard that holds key's counter.
func (lc *LocalCounters) shard(key string) *counterShard {
	return &lc.shards[maphash.String(lc.seed, key)%uint64(len(lc.shards))]
}

// counterLocked is key's counter, made (after a sweep, when due) if there
// is none yet; sh.mu is held.
func (sh *counterShard) counterLocked(key string, starts *[numPeriods]int64) *counter {
	c := sh.m[key]
	if c == nil {
		sh.sweepLocked(starts)
		c = &counter{}
		sh.m[key] = c
	}
	return c
}

// sweepLocked drops counters whose windows have all passed, once the
// shard has doubled since the last sweep, so memory follows the clients
// seen recently, not every client ever seen.
func (sh *counterShard) sweepLocked(starts *[numPeriods]int64) {
	if len(sh.m) < 1024 || len(sh.m) < 2*sh.swept {
		return
	}
	for key, c := range sh.m {
		live := false
		for p := range c.start {
			if c.start[p] == starts[p] && c.count[p] > 0 {
				live = true
			}
		}
		if !live {
			delete(sh.m, key)
		}
	}
	sh.swept = len(sh.m)
}

// read is key's count in each period's current window, counting nothing.
func (lc *LocalCounters) read(key string, starts *[numPeriods]int64) (usage [numPeriods]float64) {
	sh := lc.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if c := sh.m[key]; c != nil {
		for p := range usage {
			if c.start[p] == starts[p] {
				usage[p] = c.count[p]
			}
		}
	}
	return usage
}

// add counts by in every period's window starting at starts; a window
// that has passed meanwhile is left alone.
func (lc *LocalCounters) add(key string, starts *[numPeriods]int64, by float64) {
	sh := lc.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.counterLocked(key, starts)
	for p := range c.start {
		switch {
		case c.start[p] < starts[p]:
			c.start[p], c.count[p] = starts[p], by
		case c.start[p] == starts[p]:
			c.count[p] += by
		}
	}
}
