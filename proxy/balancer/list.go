package balancer

import (
	"cmp"
	"slices"
)

// UpstreamRef names an upstream that has a balancer on this node.
type UpstreamRef struct{ ID, Name string }

// Upstreams lists the upstreams with a balancer on this node, by name
// (for the prometheus plugin's kong_upstream_target_health).
func (r *Registry) Upstreams() []UpstreamRef {
	r.mu.Lock()
	out := make([]UpstreamRef, 0, len(r.states))
	for id, st := range r.states {
		if l := st.live.Load(); l != nil {
			out = append(out, UpstreamRef{ID: id, Name: l.B.Upstream.Name})
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b UpstreamRef) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
