// Package plugins holds the plugins that run on the proxy (Kong 3.9's
// bundled plugins, each after its kong/plugins/<name>/handler.lua) and the
// credential index the authentication plugins look keys up in.
//
// Compile turns a plugin entity into a proxy.PluginInstance when the
// node builds a snapshot: the config is decoded and checked once there,
// and the hooks close over it. Hooks see requests only through
// pdk.Exchange, never a transport's types. This package must not touch the
// database: the node keeps the Index in step with it.
package plugins

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/metrics"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// Env is what compiled plugins share: the credential index and the
// state kept across snapshots.
type Env struct {
	Index *Index
	// Counters are the local rate-limiting counts; made on first use
	// when nil.
	Counters *LocalCounters
	// Cluster is the database the rate-limiting cluster policy counts
	// in; nil on a node without one (the policy then does not compile).
	Cluster ClusterStore
	// DBTimeout bounds each of Cluster's calls (pg_timeout); 5s when 0.
	DBTimeout time.Duration
	// Log is where plugins report what an operator must act on (a data
	// store that fails); nothing is logged when nil.
	Log *zerolog.Logger
	// Metrics is where the prometheus plugin counts; made on first use
	// when nil.
	Metrics *metrics.Registry
	// NodeID and Hostname are the node's (kong.node.get_id,
	// get_hostname), for request-termination's echo.
	NodeID, Hostname string

	once        sync.Once
	metricsOnce sync.Once
	queues      logQueues
	luaOnce     sync.Once
	lua         *luaWorkers    // custom_fields_by_lua (luafields.go)
	templates   templateStates // request-transformer's (reqtemplate.go)
	health      dbHealth
	redis       redisClients
}

func (e *Env) dbHealth() *dbHealth { return &e.health }

// metrics is the registry the prometheus plugin counts in.
func (e *Env) metrics() *metrics.Registry {
	e.metricsOnce.Do(func() {
		if e.Metrics == nil {
			e.Metrics = metrics.New()
		}
	})
	return e.Metrics
}

// nopLogger is the logger of an Env without one.
var nopLogger = zerolog.Nop()

func (e *Env) logger() *zerolog.Logger {
	if e.Log == nil {
		return &nopLogger
	}
	return e.Log
}

// sampled lets one log line through per sampleEvery and counts the ones
// it held back, so a failure that hits every request is visible without
// flooding the log.
type sampled struct {
	last    atomic.Int64 // unix ns of the last line let through
	dropped atomic.Int64
}

const sampleEvery = 10 * time.Second

func (s *sampled) allow(now time.Time) (ok bool, dropped int64) {
	last := s.last.Load()
	if now.UnixNano()-last < int64(sampleEvery) || !s.last.CompareAndSwap(last, now.UnixNano()) {
		s.dropped.Add(1)
		return false, 0
	}
	return true, s.dropped.Swap(0)
}

// builder compiles one plugin's config into its hooks.
type builder func(env *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error)

// builders are the plugins that run on the proxy, by name.
var builders = map[string]builder{}

func register(name string, b builder) { builders[name] = b }

// Runs reports whether the plugin name runs on the proxy.
func Runs(name string) bool { _, ok := builders[name]; return ok }

// Names lists the plugins that run on the proxy, sorted.
func Names() []string {
	names := make([]string, 0, len(builders))
	for n := range builders {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ErrNotRunning is returned by Compile for a plugin whose schema ships
// but which does not run on the proxy yet.
var ErrNotRunning = fmt.Errorf("plugin does not run on the proxy yet")

// Compile turns an enabled plugin entity into the proxy's instance; nil
// (and no error) for a disabled one.
func Compile(env *Env, p *entity.Plugin) (*proxy.PluginInstance, error) {
	if env.Metrics != nil {
		env.Metrics.Forget(p.ID) // tracked again if it is still a prometheus plugin
	}
	if !p.Enabled {
		return nil, nil
	}
	b, ok := builders[p.Name]
	if !ok {
		return nil, fmt.Errorf("plugin %s %s: %w", p.Name, p.ID, ErrNotRunning)
	}
	hooks, err := b(env, p)
	if err != nil {
		return nil, fmt.Errorf("plugin %s %s: %w", p.Name, p.ID, err)
	}
	return instance(p, onProtocols(hooks, p.Protocols)), nil
}

// instance is p's instance running hooks.
func instance(p *entity.Plugin, hooks [proxy.NumPhases]proxy.Hook) *proxy.PluginInstance {
	inst := &proxy.PluginInstance{ID: p.ID, Name: p.Name, Hooks: hooks}
	if def, _ := entity.PluginByName(p.Name); def != nil {
		inst.Priority = def.Priority
	}
	if p.Route != nil {
		inst.RouteID = p.Route.ID
	}
	if p.Service != nil {
		inst.ServiceID = p.Service.ID
	}
	if p.Consumer != nil {
		inst.ConsumerID = p.Consumer.ID
	}
	return inst
}

// shareable names the plugins whose hooks depend on their config and
// protocols alone: no per-instance state (counters, queues, metrics) and
// nothing of the entity beyond its config. Two instances with the same
// config can run the same hooks.
var shareable = map[string]bool{
	"acl": true, "basic-auth": true, "cors": true, "hmac-auth": true, "ip-restriction": true,
	"jwt": true, "key-auth": true, "request-size-limiting": true, "request-termination": true,
}

// maxShared bounds a Compiler's memory of hooks; past it, it starts over.
const maxShared = 4096

// Compiler is Compile building the hooks of a shareable plugin once per
// distinct name, protocols and config: ten thousand services with the same
// key-auth plugin compile it once, not ten thousand times (a tenth of a
// full reload). Not safe for concurrent use.
type Compiler struct {
	env    *Env
	hooks  map[string][proxy.NumPhases]proxy.Hook
	builds int    // hooks built, for tests
	key    []byte // the share key being looked up, kept for its capacity
}

// NewCompiler returns a Compiler of plugins sharing env.
func NewCompiler(env *Env) *Compiler {
	return &Compiler{env: env, hooks: map[string][proxy.NumPhases]proxy.Hook{}}
}

// Compile is Compile(env, p), with the hooks of a shareable plugin taken
// from an earlier one of the same config when there was one.
func (c *Compiler) Compile(p *entity.Plugin) (*proxy.PluginInstance, error) {
	var shared bool
	c.key, shared = appendShareKey(c.key[:0], p)
	if hooks, ok := c.hooks[string(c.key)]; shared && ok {
		if c.env.Metrics != nil {
			c.env.Metrics.Forget(p.ID) // as Compile does
		}
		return instance(p, hooks), nil
	}
	c.builds++
	inst, err := Compile(c.env, p)
	if shared && err == nil && inst != nil {
		if len(c.hooks) >= maxShared {
			clear(c.hooks)
		}
		c.hooks[string(c.key)] = inst.Hooks
	}
	return inst, err
}

// appendShareKey appends to key the name of the hooks p runs, when
// another instance may share them: an enabled shareable plugin, by its
// name, protocols and config (appendConfigKey).
func appendShareKey(key []byte, p *entity.Plugin) ([]byte, bool) {
	if !p.Enabled || !shareable[p.Name] {
		return key, false
	}
	key = append(key, p.Name...)
	key = append(key, 0)
	key = append(key, strings.Join(p.Protocols, ",")...)
	key = append(key, 0)
	return appendConfigKey(key, p.Config)
}

// appendConfigKey appends one text per config value, as json.Marshal
// wrote it here before (map keys sorted), without its reflection: that
// cost a full reload of ten thousand plugins a sixth of its allocations.
// Only values that encode alike are equal configs to the plugins, which
// read their config through JSON (decodeConfig). Types a decoded
// document does not hold are encoded by json.Marshal.
func appendConfigKey(key []byte, v any) ([]byte, bool) {
	ok := true
	switch v := v.(type) {
	case nil:
		key = append(key, "null"...)
	case bool:
		key = strconv.AppendBool(key, v)
	case float64:
		key = strconv.AppendFloat(key, v, 'g', -1, 64)
	case string:
		key = strconv.AppendQuote(key, v)
	case []any:
		if v == nil {
			return append(key, "null"...), true
		}
		key = append(key, '[')
		for i, x := range v {
			if i > 0 {
				key = append(key, ',')
			}
			if key, ok = appendConfigKey(key, x); !ok {
				return key, false
			}
		}
		key = append(key, ']')
	case map[string]any:
		if v == nil {
			return append(key, "null"...), true
		}
		var small [16]string
		names := small[:0]
		for name := range v {
			names = append(names, name)
		}
		slices.Sort(names)
		key = append(key, '{')
		for i, name := range names {
			if i > 0 {
				key = append(key, ',')
			}
			key = strconv.AppendQuote(key, name)
			key = append(key, ':')
			if key, ok = appendConfigKey(key, v[name]); !ok {
				return key, false
			}
		}
		key = append(key, '}')
	default:
		text, err := json.Marshal(v)
		if err != nil {
			return key, false
		}
		key = append(key, text...)
	}
	return key, true
}

// onProtocols makes the hooks skip requests whose scheme the plugin's
// protocols leave out (a plugin on https only does not run over http).
func onProtocols(hooks [proxy.NumPhases]proxy.Hook, protocols []string) [proxy.NumPhases]proxy.Hook {
	http := len(protocols) == 0 || slices.Contains(protocols, "http")
	https := len(protocols) == 0 || slices.Contains(protocols, "https")
	if http && https {
		return hooks
	}
	for i, h := range hooks {
		if h == nil {
			continue
		}
		hooks[i] = func(x pdk.Exchange) {
			if x.Scheme() == "https" && https || x.Scheme() == "http" && http {
				h(x)
			}
		}
	}
	return hooks
}

// decodeConfig reads a plugin's config (defaults filled in by its schema
// when it was written) into a typed struct.
func decodeConfig(p *entity.Plugin, into any) error {
	raw, err := json.Marshal(p.Config)
	if err != nil {
		return fmt.Errorf("encoding config: %w", err)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("decoding config: %w", err)
	}
	return nil
}

// exitMessage answers as kong.response.exit(status, { message = msg })
// does: a JSON object with the message.
func exitMessage(x pdk.Exchange, status int, msg string) {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	x.Exit(status, body, "application/json; charset=utf-8")
}
