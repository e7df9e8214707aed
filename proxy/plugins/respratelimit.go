package plugins

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// response-ratelimiting (kong/plugins/response-ratelimiting: handler.lua,
// access.lua, header_filter.lua, log.lua): named limits ("video": 10 a
// minute) that the upstream spends by answering with a header such as
// "X-Kong-Limit: video=2, image=1". Access reads each limit's usage and
// refuses a client with a limit used up (block_on_first_violation); the
// header filter parses what the answer spent, sends the limits and what
// remains of them, and turns an answer that spends a used-up limit into a
// 429; the log phase counts what was spent. As in Kong, the usage is read
// before the request and counted after it, so concurrent requests may
// overspend a limit a little; the counts live where the policy says
// (local: this process, cluster: the database, redis).

func init() { register("response-ratelimiting", buildResponseRateLimit) }

type responseRateLimitConfig struct {
	HeaderName            string                          `json:"header_name"`
	LimitBy               string                          `json:"limit_by"`
	Policy                string                          `json:"policy"`
	FaultTolerant         bool                            `json:"fault_tolerant"`
	Redis                 redisConfig                     `json:"redis"`
	BlockOnFirstViolation bool                            `json:"block_on_first_violation"`
	HideClientHeaders     bool                            `json:"hide_client_headers"`
	Limits                map[string]responseLimitPeriods `json:"limits"`
}

type responseLimitPeriods struct {
	Second *float64 `json:"second"`
	Minute *float64 `json:"minute"`
	Hour   *float64 `json:"hour"`
	Day    *float64 `json:"day"`
	Month  *float64 `json:"month"`
	Year   *float64 `json:"year"`
}

// responseLimit is one named limit, compiled.
type responseLimit struct {
	name      string
	limits    [numPeriods]float64   // 0: the period is not limited
	remaining string                // X-RateLimit-Remaining-<name>
	headers   [numPeriods][2]string // X-RateLimit-Limit-<name>-<period>, X-RateLimit-Remaining-<name>-<period>
}

type responseRateLimit struct {
	c      responseRateLimitConfig
	limits []responseLimit // sorted by name
	policy responsePolicy
	env    *Env
	logged sampled
	key    *int // the request's responseUsage (pdk.Exchange.Value)
}

// responsePolicy keeps the counts of named limits.
type responsePolicy interface {
	// usage is each period's count of the limit name for identifier in
	// the windows starting at starts (only the periods limits sets).
	usage(identifier, name string, limits *[numPeriods]float64, starts *[numPeriods]int64) ([numPeriods]float64, error)
	// increment adds by to every period's count of the limit.
	increment(identifier, name string, starts *[numPeriods]int64, by float64) error
}

// responseUsage is one request's state between its phases (Kong's
// kong.ctx.plugin).
type responseUsage struct {
	identifier string
	starts     [numPeriods]int64
	usage      [][numPeriods]float64 // per limit, as read in access
	increments []float64             // per limit, from the answer's header
	spent      []bool                // the answer named the limit with a number
	stopLog    bool
}

func buildResponseRateLimit(env *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	rl := &responseRateLimit{env: env, key: new(int)}
	if err := decodeConfig(p, &rl.c); err != nil {
		return hooks, err
	}
	switch rl.c.Policy {
	case "local":
		rl.policy = localResponsePolicy{id: p.ID, counters: env.counters()}
	case "cluster":
		rp, err := newClusterResponsePolicy(env, p)
		if err != nil {
			return hooks, err
		}
		rl.policy = rp
	case "redis":
		rp, err := newRedisResponsePolicy(env, p, &rl.c.Redis)
		if err != nil {
			return hooks, err
		}
		rl.policy = rp
	default:
		return hooks, errString("response-ratelimiting policy " + rl.c.Policy + " does not run on the proxy")
	}
	for name, periods := range rl.c.Limits {
		l := responseLimit{name: name, remaining: "X-RateLimit-Remaining-" + name}
		for i, v := range []*float64{periods.Second, periods.Minute, periods.Hour, periods.Day, periods.Month, periods.Year} {
			if v != nil {
				l.limits[i] = *v
			}
			l.headers[i] = [2]string{"X-RateLimit-Limit-" + name + "-" + periodKeys[i], "X-RateLimit-Remaining-" + name + "-" + periodKeys[i]}
		}
		rl.limits = append(rl.limits, l)
	}
	slices.SortFunc(rl.limits, func(a, b responseLimit) int { return strings.Compare(a.name, b.name) })
	hooks[proxy.PhaseAccess] = rl.access
	hooks[proxy.PhaseHeaderFilter] = rl.headerFilter
	hooks[proxy.PhaseLog] = rl.log
	return hooks, nil
}

// identifier is access.lua's get_identifier: the consumer (or its
// credential), the credential, or else the client's address.
func (rl *responseRateLimit) identifier(x pdk.Exchange) string {
	switch rl.c.LimitBy {
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
	}
	return x.ClientIP().String()
}

func (rl *responseRateLimit) access(x pdk.Exchange) {
	now := time.Now()
	st := &responseUsage{identifier: rl.identifier(x), starts: periodStarts(now),
		usage: make([][numPeriods]float64, len(rl.limits))}
	for i := range rl.limits {
		u, err := rl.policy.usage(st.identifier, rl.limits[i].name, &rl.limits[i].limits, &st.starts)
		if err != nil {
			// access.lua: without fault_tolerant the error ends the
			// request (Kong's 500); with it the request goes on, and
			// the later phases do nothing.
			if !rl.c.FaultTolerant {
				x.Error(500, msgUnexpected)
				return
			}
			rl.logFailure(now, "failed to get usage", err)
			return
		}
		st.usage[i] = u
	}
	for i := range rl.limits {
		l := &rl.limits[i]
		remaining, any := 0.0, false
		for p, limit := range l.limits {
			if limit == 0 {
				continue
			}
			left := limit - st.usage[i][p]
			if rl.c.BlockOnFirstViolation && left == 0 {
				x.Error(429, "API rate limit exceeded for '"+l.name+"'")
				return
			}
			if !any || left < remaining {
				remaining, any = left, true
			}
		}
		x.SetResponseHeader(l.remaining, formatNumber(remaining))
	}
	x.SetValue(rl.key, st)
}

func (rl *responseRateLimit) headerFilter(x pdk.Exchange) {
	st, _ := x.Value(rl.key).(*responseUsage)
	if st == nil {
		return
	}
	st.increments, st.spent = make([]float64, len(rl.limits)), make([]bool, len(rl.limits))
	x.VisitResponseHeaders(func(name, value []byte) {
		if strings.EqualFold(string(name), rl.c.HeaderName) {
			rl.parseSpent(st, value)
		}
	})
	stop := false
	for i := range rl.limits {
		l := &rl.limits[i]
		for p, limit := range l.limits {
			if limit == 0 {
				continue
			}
			left := limit - st.usage[i][p]
			if !rl.c.HideClientHeaders {
				x.SetResponseHeader(l.headers[p][0], formatNumber(limit))
				x.SetResponseHeader(l.headers[p][1], formatNumber(max(0, left-st.increments[i])))
			}
			if st.increments[i] > 0 && left <= 0 {
				stop = true
			}
		}
	}
	x.ClearResponseHeader(rl.c.HeaderName)
	if stop {
		st.stopLog = true
		refuseKeepingHeaders(x, 429)
	}
}

// parseSpent reads one value of the answer's header ("video=2, image=1"),
// as header_filter.lua's parse_header: parts split at commas, each
// "name=number" of a configured limit counts; anything else is skipped.
func (rl *responseRateLimit) parseSpent(st *responseUsage, value []byte) {
	for part := range bytes.SplitSeq(value, []byte(",")) {
		name, n, ok := bytes.Cut(part, []byte("="))
		if !ok || bytes.Contains(n, []byte("=")) {
			continue
		}
		i, found := slices.BinarySearchFunc(rl.limits, string(bytes.TrimSpace(name)), func(l responseLimit, name string) int {
			return strings.Compare(l.name, name)
		})
		if !found {
			continue
		}
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(n)), 64)
		if err != nil {
			st.increments[i], st.spent[i] = 0, false // Lua's tonumber gives nil
			continue
		}
		st.increments[i], st.spent[i] = v, true
	}
}

// refuseKeepingHeaders is kong.response.exit(status) from a header
// filter: the status changes and the body goes, the headers stay.
func refuseKeepingHeaders(x pdk.Exchange, status int) {
	type header struct{ name, value string }
	var kept []header
	x.VisitResponseHeaders(func(name, value []byte) {
		if !strings.EqualFold(string(name), "Content-Length") {
			kept = append(kept, header{string(name), string(value)})
		}
	})
	x.Exit(status, nil, "")
	seen := map[string]bool{}
	for _, h := range kept {
		key := strings.ToLower(h.name)
		if seen[key] {
			x.AddResponseHeader(h.name, h.value)
			continue
		}
		seen[key] = true
		x.SetResponseHeader(h.name, h.value)
	}
}

func (rl *responseRateLimit) log(x pdk.Exchange) {
	st, _ := x.Value(rl.key).(*responseUsage)
	if st == nil || st.stopLog || st.increments == nil {
		return
	}
	for i := range rl.limits {
		if !st.spent[i] || st.increments[i] == 0 {
			continue
		}
		if err := rl.policy.increment(st.identifier, rl.limits[i].name, &st.starts, st.increments[i]); err != nil {
			rl.logFailure(time.Now(), "failed to increment usage", err)
		}
	}
}

func (rl *responseRateLimit) logFailure(now time.Time, msg string, err error) {
	if ok, dropped := rl.logged.allow(now); ok {
		rl.env.logger().Error().Err(err).Int64("failures_not_logged", dropped).
			Str("plugin", "response-ratelimiting").Str("policy", rl.c.Policy).Msg(msg)
	}
}

// localResponsePolicy counts in this process's LocalCounters, apart from
// rate-limiting's counts.
type localResponsePolicy struct {
	id       string // the plugin's
	counters *LocalCounters
}

func (lp localResponsePolicy) key(identifier, name string) string {
	return "response\x00" + lp.id + "\x00" + identifier + "\x00" + name
}

func (lp localResponsePolicy) usage(identifier, name string, _ *[numPeriods]float64, starts *[numPeriods]int64) ([numPeriods]float64, error) {
	return lp.counters.read(lp.key(identifier, name), starts), nil
}

func (lp localResponsePolicy) increment(identifier, name string, starts *[numPeriods]int64, by float64) error {
	lp.counters.add(lp.key(identifier, name), starts, by)
	return nil
}
