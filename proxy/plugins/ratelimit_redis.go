package plugins

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/grapevine-gw/grapevine/entity"
)

// The rate-limiting redis policy (kong/plugins/rate-limiting/policies/
// init.lua): counters in Redis under Kong's keys,
// ratelimit:<route_id>:<service_id>:<identifier>:<window start ms>:<period>,
// so Grapevine and Kong nodes sharing a Redis count together. Where Kong's
// script increments each period's key on its own (a refused request counts
// too), one Lua script here checks every period and counts the request in
// all or none, atomically in Redis, so L parallel requests against a
// limit of L pass exactly, across any number of nodes. Counts are always
// taken in real time: a sync_rate other than -1 is accepted and counts in
// real time too. The used-up memory, the timeout (config.redis.timeout)
// and the pause after a failure are the cluster policy's (remotePolicy).

type redisConfig struct {
	Host       *string `json:"host"`
	Port       float64 `json:"port"`
	Timeout    float64 `json:"timeout"` // ms
	Username   *string `json:"username"`
	Password   *string `json:"password"`
	Database   float64 `json:"database"`
	SSL        bool    `json:"ssl"`
	SSLVerify  bool    `json:"ssl_verify"`
	ServerName *string `json:"server_name"`
}

// redisTake checks and counts every window's key in one step: the counts
// before, and the request counted only if every window has room. Keys
// new to a window expire when the window ends.
var redisTake = redis.NewScript(`
local n = #KEYS
local counts = {}
local used_up = false
for i = 1, n do
  local c = tonumber(redis.call("get", KEYS[i]) or "0")
  counts[i] = c
  if tonumber(ARGV[i]) - c <= 0 then used_up = true end
end
if not used_up then
  for i = 1, n do
    if redis.call("incr", KEYS[i]) == 1 then
      redis.call("pexpireat", KEYS[i], ARGV[n + i])
    end
  end
end
return counts
`)

type redisPolicy struct {
	client             *redis.Client
	serviceID, routeID string // the plugin's scope, zeros when unscoped
}

func newRedisPolicy(env *Env, p *entity.Plugin, c *redisConfig) (*remotePolicy, error) {
	if c.Host == nil || *c.Host == "" {
		return nil, errString("rate-limiting policy redis needs config.redis.host")
	}
	client := env.redisClient(c)
	serviceID, routeID := pluginScope(p)
	rp := &redisPolicy{client: client, serviceID: orZeroUUID(serviceID), routeID: orZeroUUID(routeID)}
	return &remotePolicy{storeCalls: env.redisCalls(client, c), take: rp.take}, nil
}

// redisCalls are calls to a Redis server, bounded by config.redis.timeout.
func (e *Env) redisCalls(client *redis.Client, c *redisConfig) storeCalls {
	timeout := time.Duration(c.Timeout) * time.Millisecond
	if timeout <= 0 {
		timeout = 2 * time.Second // kong/tools/redis/schema.lua's default
	}
	return storeCalls{health: e.redisHealth(client), timeout: timeout}
}

// zeroUUID stands for an unscoped plugin's service or route in Kong's keys
// (EMPTY_UUID).
const zeroUUID = "00000000-0000-0000-0000-000000000000"

func (rp *redisPolicy) take(ctx context.Context, identifier string, windows []RateWindow) ([]int64, error) {
	keys := make([]string, len(windows))
	args := make([]any, 2*len(windows))
	for i, w := range windows {
		keys[i] = "ratelimit:" + rp.routeID + ":" + rp.serviceID + ":" + identifier + ":" +
			strconv.FormatInt(w.Start.UnixMilli(), 10) + ":" + w.Period
		args[i] = strconv.FormatFloat(w.Limit, 'f', -1, 64)
		args[len(windows)+i] = strconv.FormatInt(w.End.UnixMilli(), 10)
	}
	res, err := redisTake.Run(ctx, rp.client, keys, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if len(res) != len(windows) {
		return nil, fmt.Errorf("redis: got %d counts for %d windows", len(res), len(windows))
	}
	return res, nil
}

// redisClients are the Env's Redis connections, one pool per server,
// database and credentials, shared by every instance that names them and
// kept across snapshots.
type redisClients struct {
	mu      sync.Mutex // guards clients and health
	clients map[string]*redis.Client
	health  map[*redis.Client]*dbHealth
}

func (e *Env) redisClient(c *redisConfig) *redis.Client {
	key := fmt.Sprintf("%s|%v|%v|%v|%v|%v|%v|%v|%v", deref(c.Host), c.Port, c.Database, deref(c.Username),
		deref(c.Password), c.SSL, c.SSLVerify, deref(c.ServerName), c.Timeout)
	e.redis.mu.Lock()
	defer e.redis.mu.Unlock()
	if cl := e.redis.clients[key]; cl != nil {
		return cl
	}
	timeout := time.Duration(c.Timeout) * time.Millisecond
	opts := &redis.Options{
		Addr:         net.JoinHostPort(deref(c.Host), strconv.Itoa(int(c.Port))),
		Username:     deref(c.Username),
		Password:     deref(c.Password),
		DB:           int(c.Database),
		DialTimeout:  timeout,
		ReadTimeout:  timeout,
		WriteTimeout: timeout,
		// A failed call is retried by the next request, not here: the
		// request waits at most one timeout.
		MaxRetries: -1,
	}
	if c.SSL {
		opts.TLSConfig = &tls.Config{InsecureSkipVerify: !c.SSLVerify, ServerName: deref(c.ServerName)} //nolint:gosec // Kong's ssl_verify=false
	}
	cl := redis.NewClient(opts)
	if e.redis.clients == nil {
		e.redis.clients = map[string]*redis.Client{}
		e.redis.health = map[*redis.Client]*dbHealth{}
	}
	e.redis.clients[key] = cl
	e.redis.health[cl] = &dbHealth{}
	return cl
}

func (e *Env) redisHealth(cl *redis.Client) *dbHealth {
	e.redis.mu.Lock()
	defer e.redis.mu.Unlock()
	return e.redis.health[cl]
}

// Close closes the Redis connections the plugins opened and stops the
// logging plugins' Lua workers and queues.
func (e *Env) Close() {
	e.luaOnce.Do(func() {}) // waits for workers being started; none start after
	if e.lua != nil {
		e.lua.close()
	}
	e.closeQueues()
	e.redis.mu.Lock()
	defer e.redis.mu.Unlock()
	for key, cl := range e.redis.clients {
		_ = cl.Close()
		delete(e.redis.clients, key)
	}
}
