package plugins

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/grapevine-gw/grapevine/entity"
)

// response-ratelimiting's cluster and redis policies
// (kong/plugins/response-ratelimiting/policies): the counts of each named
// limit live in the database's response_ratelimiting_metrics or in Redis,
// under Kong's keys, so every node reads and adds to one total. A call is
// bounded and paused after a failure by storeCalls, as rate-limiting's
// are.

// remoteResponsePolicy reads and adds through read and add.
type remoteResponsePolicy struct {
	storeCalls
	read func(ctx context.Context, identifier, name string, windows []RateWindow) ([]int64, error)
	add  func(ctx context.Context, identifier, name string, windows []RateWindow, by int64) error
}

func newClusterResponsePolicy(env *Env, p *entity.Plugin) (*remoteResponsePolicy, error) {
	if env.Cluster == nil {
		return nil, errString("response-ratelimiting policy cluster needs a database")
	}
	serviceID, routeID := pluginScope(p)
	db := env.Cluster
	return &remoteResponsePolicy{
		storeCalls: databaseCalls(env),
		read: func(ctx context.Context, identifier, name string, windows []RateWindow) ([]int64, error) {
			return db.ResponseRateLimitUsage(ctx, identifier, serviceID, routeID, name, windows)
		},
		add: func(ctx context.Context, identifier, name string, windows []RateWindow, by int64) error {
			return db.IncrementResponseRateLimit(ctx, identifier, serviceID, routeID, name, windows, by)
		},
	}, nil
}

// pluginScope is the plugin's service and route ids ("" for none).
func pluginScope(p *entity.Plugin) (serviceID, routeID string) {
	if p.Service != nil {
		serviceID = p.Service.ID
	}
	if p.Route != nil {
		routeID = p.Route.ID
	}
	return serviceID, routeID
}

func (rp *remoteResponsePolicy) usage(identifier, name string, limits *[numPeriods]float64, starts *[numPeriods]int64) (usage [numPeriods]float64, err error) {
	windows := make([]RateWindow, 0, numPeriods)
	periods := make([]int, 0, numPeriods)
	for p, limit := range limits {
		if limit != 0 {
			windows = append(windows, rateWindow(p, starts))
			periods = append(periods, p)
		}
	}
	var counts []int64
	err = rp.call(func(ctx context.Context) (err error) {
		counts, err = rp.read(ctx, identifier, name, windows)
		return err
	})
	if err != nil {
		return usage, err
	}
	if len(counts) != len(windows) {
		return usage, fmt.Errorf("got %d counts for %d windows", len(counts), len(windows))
	}
	for i, p := range periods {
		usage[p] = float64(counts[i])
	}
	return usage, nil
}

// increment adds by to every period's window, as Kong's policies do
// whatever periods the limit sets. Counts are whole numbers (an INTEGER
// column, Redis's INCRBY): by is rounded.
func (rp *remoteResponsePolicy) increment(identifier, name string, starts *[numPeriods]int64, by float64) error {
	windows := make([]RateWindow, numPeriods)
	for p := range windows {
		windows[p] = rateWindow(p, starts)
	}
	return rp.call(func(ctx context.Context) error {
		return rp.add(ctx, identifier, name, windows, int64(math.Round(by)))
	})
}

// rateWindow is period p's window starting at starts[p].
func rateWindow(p int, starts *[numPeriods]int64) RateWindow {
	start := time.UnixMilli(starts[p]).UTC()
	return RateWindow{Period: periodKeys[p], Start: start, End: windowEnd(p, start)}
}

func newRedisResponsePolicy(env *Env, p *entity.Plugin, c *redisConfig) (*remoteResponsePolicy, error) {
	if c.Host == nil || *c.Host == "" {
		return nil, errString("response-ratelimiting policy redis needs config.redis.host")
	}
	client := env.redisClient(c)
	serviceID, routeID := pluginScope(p)
	keys := responseRedisKeys{serviceID: orZeroUUID(serviceID), routeID: orZeroUUID(routeID)}
	return &remoteResponsePolicy{
		storeCalls: env.redisCalls(client, c),
		read: func(ctx context.Context, identifier, name string, windows []RateWindow) ([]int64, error) {
			return keys.read(ctx, client, identifier, name, windows)
		},
		add: func(ctx context.Context, identifier, name string, windows []RateWindow, by int64) error {
			return keys.add(ctx, client, identifier, name, windows, by)
		},
	}, nil
}

func orZeroUUID(id string) string {
	if id == "" {
		return zeroUUID
	}
	return id
}

// responseRedisKeys names the counts as policies/init.lua's
// get_local_key does: response-ratelimit:<route>:<service>:<identifier>:
// <window start ms>:<limit name>:<period>.
type responseRedisKeys struct{ serviceID, routeID string }

func (k responseRedisKeys) key(identifier, name string, w RateWindow) string {
	return "response-ratelimit:" + k.routeID + ":" + k.serviceID + ":" + identifier + ":" +
		strconv.FormatInt(w.Start.UnixMilli(), 10) + ":" + name + ":" + w.Period
}

func (k responseRedisKeys) read(ctx context.Context, client *redis.Client, identifier, name string, windows []RateWindow) ([]int64, error) {
	keys := make([]string, len(windows))
	for i, w := range windows {
		keys[i] = k.key(identifier, name, w)
	}
	values, err := client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	counts := make([]int64, len(windows))
	for i, v := range values {
		if s, ok := v.(string); ok {
			counts[i], _ = strconv.ParseInt(s, 10, 64)
		}
	}
	return counts, nil
}

// redisAdd adds ARGV[1] to each key and gives a key it created the
// lifetime of its period (ARGV[i+1] seconds), as the policy's pipeline of
// INCRBY and EXPIRE does for keys that did not exist.
var redisAdd = redis.NewScript(`
for i, key in ipairs(KEYS) do
  if redis.call('INCRBY', key, ARGV[1]) == tonumber(ARGV[1]) then
    redis.call('EXPIRE', key, ARGV[i + 1])
  end
end
return 0
`)

func (k responseRedisKeys) add(ctx context.Context, client *redis.Client, identifier, name string, windows []RateWindow, by int64) error {
	keys := make([]string, len(windows))
	args := make([]any, 1, 1+len(windows))
	args[0] = by
	for i, w := range windows {
		keys[i] = k.key(identifier, name, w)
		args = append(args, periodExpiration(w.Period))
	}
	if err := redisAdd.Run(ctx, client, keys, args...).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// periodExpiration is policies/init.lua's EXPIRATIONS: a period's length
// in seconds (months 30 days, years 365).
func periodExpiration(period string) int64 {
	for p, name := range periodKeys {
		if name == period {
			return periodWindows[p]
		}
	}
	return 1
}
