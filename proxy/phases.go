package proxy

import (
	"cmp"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// Request phases are where plugins hook into the request path without
// touching the forwarding code. Each route's plan is resolved when the
// snapshot is built (phasePlan): the plugins that may apply, in Kong's
// PRIORITY order (higher first, equal priorities by name, descending;
// kong/db/dao/plugins.lua sort_by_handler_priority), each with the
// instance Kong's precedence picks for the route (route and service,
// then route, then service, then global) and, when some are scoped to
// consumers, the instance per consumer that beats it once an earlier
// plugin identified the consumer (lookup_cfg in
// kong/runloop/plugins_iterator.lua). A route no plugin applies to has no
// plan, and its requests do no phase work at all.

// Phase is a point in the request path, in the order they run.
type Phase uint8

const (
	// PhaseRewrite runs first. As in Kong, only global plugins run in it;
	// unlike Kong it runs after routing (the route is known but unused).
	PhaseRewrite Phase = iota
	// PhaseAccess runs before the request goes upstream.
	PhaseAccess
	// PhaseHeaderFilter runs once the response headers are known.
	PhaseHeaderFilter
	// PhaseBodyFilter runs on the whole (buffered) response body.
	PhaseBodyFilter
	// PhaseLog runs last, after the response is complete.
	PhaseLog
	// NumPhases is the number of phases.
	NumPhases
)

// Hook is one plugin's work in one phase. In the rewrite and access phases
// a hook may answer the request itself (x.Error or x.Exit): nothing is
// sent upstream, no later plugin's access hook runs, and the filters and
// log hooks of every plugin that applies still do (as after Kong's
// kong.response.exit).
type Hook func(x pdk.Exchange)

// PluginInstance is one configured plugin, compiled by its owner (the node,
// from a plugin entity): where it applies and its hooks per phase.
type PluginInstance struct {
	ID         string
	Name       string
	Priority   int    // Kong's handler PRIORITY: higher runs first
	RouteID    string // "": any route
	ServiceID  string // "": any service
	ConsumerID string // "": any consumer
	Hooks      [NumPhases]Hook
}

// rank is an instance's place in Kong's lookup_cfg order: lower wins.
func (p *PluginInstance) rank() int {
	r, s, c := p.RouteID != "", p.ServiceID != "", p.ConsumerID != ""
	switch {
	case r && s && c:
		return 0
	case r && c:
		return 1
	case s && c:
		return 2
	case r && s:
		return 3
	case c:
		return 4
	case r:
		return 5
	case s:
		return 6
	}
	return 7
}

// planEntry is one plugin of a route's plan: the instance that applies
// without a consumer (nil if none), and those of consumers that beat it.
type planEntry struct {
	base       *PluginInstance
	byConsumer map[string]*PluginInstance
}

// pick is the instance that applies for the consumer (or none).
func (e *planEntry) pick(consumerID string) *PluginInstance {
	if e.byConsumer != nil && consumerID != "" {
		if p, ok := e.byConsumer[consumerID]; ok {
			return p
		}
	}
	return e.base
}

// phasePlan is a route's plugins in running order.
type phasePlan struct {
	rewrite []Hook // global instances' rewrite hooks
	entries []planEntry
}

// resolvePlan picks, among the candidate instances (those scoped to the
// route, its service, consumers or nothing), what applies to the route and
// orders it; nil when nothing can apply.
func resolvePlan(routeID, serviceID string, candidates []*PluginInstance) *phasePlan {
	type choice struct {
		name     string
		priority int
		planEntry
	}
	chosen := map[string]*choice{}
	for _, p := range candidates {
		if p.RouteID != "" && p.RouteID != routeID || p.ServiceID != "" && p.ServiceID != serviceID {
			continue
		}
		c := chosen[p.Name]
		if c == nil {
			c = &choice{name: p.Name, priority: p.Priority}
			chosen[p.Name] = c
		}
		if p.ConsumerID == "" {
			if c.base == nil || p.rank() < c.base.rank() {
				c.base = p
			}
			continue
		}
		if c.byConsumer == nil {
			c.byConsumer = map[string]*PluginInstance{}
		}
		if old := c.byConsumer[p.ConsumerID]; old == nil || p.rank() < old.rank() {
			c.byConsumer[p.ConsumerID] = p
		}
	}
	if len(chosen) == 0 {
		return nil
	}
	list := make([]*choice, 0, len(chosen))
	for _, c := range chosen {
		// A consumer's instance that ranks below the route's own never
		// applies (route and service beat consumer alone).
		for id, p := range c.byConsumer {
			if c.base != nil && p.rank() > c.base.rank() {
				delete(c.byConsumer, id)
			}
		}
		if len(c.byConsumer) == 0 {
			c.byConsumer = nil
		}
		list = append(list, c)
	}
	slices.SortFunc(list, func(a, b *choice) int {
		if c := cmp.Compare(b.priority, a.priority); c != 0 {
			return c
		}
		return strings.Compare(b.name, a.name)
	})
	plan := &phasePlan{entries: make([]planEntry, len(list))}
	for i, c := range list {
		plan.entries[i] = c.planEntry
		if c.base != nil && c.base.rank() == 7 && c.base.Hooks[PhaseRewrite] != nil {
			plan.rewrite = append(plan.rewrite, c.base.Hooks[PhaseRewrite])
		}
	}
	return plan
}

// access runs the access hooks in order, picking each plugin's instance
// for the consumer known so far, and collects the instances whose later
// phases run. Once a hook answered, the rest are still collected but
// their access hooks do not run, as Kong's collecting iterator goes on
// under ctx.delayed_response (kong/init.lua
// execute_collecting_plugins_iterator): a logging plugin of lower
// priority logs the answer of an authentication plugin. It reports
// whether a hook answered the request.
func (p *phasePlan) access(x *exchange) bool {
	exited := x.exited
	for i := range p.entries {
		consumerID := ""
		if x.consumer != nil {
			consumerID = x.consumer.ID
		}
		inst := p.entries[i].pick(consumerID)
		if inst == nil {
			continue
		}
		x.collected = append(x.collected, inst)
		if h := inst.Hooks[PhaseAccess]; h != nil && !exited {
			h(x)
			exited = x.exited
		}
	}
	return exited
}

// runCollected calls a later phase's hooks of the collected instances.
func runCollected(ph Phase, x *exchange) {
	for _, inst := range x.collected {
		if h := inst.Hooks[ph]; h != nil {
			h(x)
		}
	}
}

// forwardWithPlan is the request path of a route with plugins: rewrite and
// access hooks, the upstream round trip unless a hook answered, then the
// filters and the log hooks.
func (s *Server) forwardWithPlan(ctx *fasthttp.RequestCtx, st *reqState, plan *phasePlan, up upstreamCall) {
	x := &st.x
	x.reset(s, ctx, st, up)
	st.plugged = true
	x.early = true
	for _, h := range plan.rewrite {
		if h(x); x.exited {
			break
		}
	}
	// After a rewrite hook's answer access still collects the plugins
	// whose later phases run, without running their access hooks.
	if !plan.access(x) {
		s.forward(ctx, st, up)
	}
	x.applyEarlyHeaders()
	runCollected(PhaseHeaderFilter, x)
	runCollected(PhaseBodyFilter, x)
	runCollected(PhaseLog, x)
	x.reset(nil, nil, nil, upstreamCall{})
}
