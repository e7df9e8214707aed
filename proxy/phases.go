package proxy

import (
	"cmp"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"
)

// Request phases are where plugins hook into the request path without
// touching the forwarding code. Each route's hooks are resolved when the
// snapshot is built (phasePlan): which instance of each plugin applies
// (Kong's precedence: route and service, then route, then service, then
// global; kong/runloop/plugins_iterator.lua) and in what order (Kong's
// PRIORITY, higher first, equal priorities by name, descending;
// kong/db/dao/plugins.lua sort_by_handler_priority). A route no plugin
// applies to has no plan, and its requests do no phase work at all.

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

// Hook is one plugin's work in one phase. In the rewrite and access
// phases a hook may answer the request itself: it writes pr.Ctx.Response
// and returns true, nothing is sent upstream and the later phases still
// run (as after Kong's kong.response.exit). Later phases ignore the result.
type Hook func(pr *PhaseRequest) (exit bool)

// PhaseRequest is what a hook sees of a request. It is valid only during
// the call: hooks must not keep it.
type PhaseRequest struct {
	Ctx       *fasthttp.RequestCtx
	RouteID   string
	ServiceID string // "" when the route has no service
	// Upstream holds changes to the headers sent upstream; hooks of the
	// rewrite and access phases add to it.
	Upstream *HeaderEdits
}

// PluginInstance is one configured plugin, compiled by its owner (the node,
// from a plugin entity): where it applies and its hooks per phase.
type PluginInstance struct {
	ID        string
	Name      string
	Priority  int    // Kong's handler PRIORITY: higher runs first
	RouteID   string // "": any route
	ServiceID string // "": any service
	Hooks     [NumPhases]Hook
}

// scope ranks an instance's precedence for a route: lower wins.
func (p *PluginInstance) scope() int {
	switch {
	case p.RouteID != "" && p.ServiceID != "":
		return 0
	case p.RouteID != "":
		return 1
	case p.ServiceID != "":
		return 2
	}
	return 3
}

// phasePlan is a route's hooks per phase, in running order.
type phasePlan struct {
	hooks [NumPhases][]Hook
}

// resolvePlan picks, among the candidate instances (those scoped to the
// route, its service or nothing), the most specific instance of each
// plugin, orders them and returns their hooks; nil when none applies.
func resolvePlan(routeID, serviceID string, candidates []*PluginInstance) *phasePlan {
	chosen := map[string]*PluginInstance{}
	for _, p := range candidates {
		if p.RouteID != "" && p.RouteID != routeID || p.ServiceID != "" && p.ServiceID != serviceID {
			continue
		}
		if old, ok := chosen[p.Name]; !ok || p.scope() < old.scope() {
			chosen[p.Name] = p
		}
	}
	if len(chosen) == 0 {
		return nil
	}
	list := make([]*PluginInstance, 0, len(chosen))
	for _, p := range chosen {
		list = append(list, p)
	}
	slices.SortFunc(list, func(a, b *PluginInstance) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		return strings.Compare(b.Name, a.Name)
	})
	plan := &phasePlan{}
	for _, p := range list {
		for ph, h := range p.Hooks {
			if h == nil || Phase(ph) == PhaseRewrite && p.scope() != 3 {
				continue
			}
			plan.hooks[ph] = append(plan.hooks[ph], h)
		}
	}
	return plan
}

// run calls a phase's hooks in order and reports whether one answered the
// request (only rewrite and access hooks may).
func (p *phasePlan) run(ph Phase, pr *PhaseRequest) bool {
	for _, h := range p.hooks[ph] {
		if h(pr) && ph <= PhaseAccess {
			return true
		}
	}
	return false
}

// forwardWithPlan is the request path of a route with plugins: rewrite and
// access hooks, the upstream round trip unless a hook answered, then the
// filters and the log hooks.
func (s *Server) forwardWithPlan(ctx *fasthttp.RequestCtx, st *reqState, plan *phasePlan, up upstreamCall) {
	pr := &st.phase
	*pr = PhaseRequest{Ctx: ctx, RouteID: up.route.id, Upstream: &st.edits}
	if up.route.svc != nil {
		pr.ServiceID = up.route.svc.id
	}
	if !plan.run(PhaseRewrite, pr) && !plan.run(PhaseAccess, pr) {
		s.forward(ctx, st, up)
	}
	plan.run(PhaseHeaderFilter, pr)
	plan.run(PhaseBodyFilter, pr)
	plan.run(PhaseLog, pr)
	*pr = PhaseRequest{}
}
