package proxy

import (
	"fmt"
	"slices"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy/balancer"
)

// Upstreams and targets compile to one balancer per upstream, in a dense
// slot list the snapshot carries; a service whose host names an upstream
// holds its slot (service.upstream), so a target change replaces one
// balancer and touches no service or route. Only creating, deleting or
// renaming an upstream re-files the services naming it.

// builtUpstream is one upstream entity and its slot.
type builtUpstream struct {
	e    entity.Upstream
	slot int
}

// upstreamState is the Builder's part for upstreams and targets.
type upstreamState struct {
	upstreams map[string]*builtUpstream             // by id
	byName    map[string]*builtUpstream             // by name
	targets   map[string]map[string]balancer.Target // upstream id → target id → target
	targetUp  map[string]string                     // target id → upstream id

	balancers []*balancer.Balancer // by slot; nil: a free slot
	shared    bool                 // a published snapshot holds balancers: copy before writing
	free      []int
}

func newUpstreamState() upstreamState {
	return upstreamState{
		upstreams: map[string]*builtUpstream{}, byName: map[string]*builtUpstream{},
		targets: map[string]map[string]balancer.Target{}, targetUp: map[string]string{},
	}
}

// applyUpstreams applies a batch's upstream and target changes and
// rebuilds the balancers they touch, once each. It returns the names
// whose upstream appeared, went or moved slot: the services naming them
// must be re-filed.
func (b *Builder) applyUpstreams(c SnapshotChange, w *[]error) (names map[string]bool) {
	u := &b.ups
	touched := map[string]bool{}
	names = map[string]bool{}
	for _, id := range c.Deleted.Targets {
		if up, ok := u.targetUp[id]; ok {
			delete(u.targets[up], id)
			delete(u.targetUp, id)
			touched[up] = true
		}
	}
	for _, id := range c.Deleted.Upstreams {
		if old := u.upstreams[id]; old != nil {
			names[old.e.Name] = true
			b.freeSlot(old)
			delete(u.upstreams, id)
			delete(u.byName, old.e.Name)
		}
		touched[id] = true
	}
	for i := range c.Put.Upstreams {
		e := c.Put.Upstreams[i]
		old := u.upstreams[e.ID]
		if old != nil && old.e.Name != e.Name {
			names[old.e.Name] = true
			delete(u.byName, old.e.Name)
		}
		if old == nil {
			old = &builtUpstream{slot: b.takeSlot()}
			u.upstreams[e.ID] = old
		}
		old.e = e
		u.byName[e.Name] = old
		names[e.Name] = true
		touched[e.ID] = true
	}
	for i := range c.Put.Targets {
		b.putTarget(&c.Put.Targets[i], touched, w)
	}
	for id := range touched {
		b.rebuildBalancer(id)
	}
	return names
}

func (b *Builder) putTarget(e *entity.Target, touched map[string]bool, w *[]error) {
	u := &b.ups
	if old, ok := u.targetUp[e.ID]; ok {
		delete(u.targets[old], e.ID)
		touched[old] = true
	}
	if e.Upstream == nil {
		return
	}
	t, err := balancer.TargetOf(e)
	if err != nil {
		*w = append(*w, fmt.Errorf("target %s skipped: %w", e.ID, err))
		return
	}
	up := e.Upstream.ID
	if u.targets[up] == nil {
		u.targets[up] = map[string]balancer.Target{}
	}
	u.targets[up][e.ID] = t
	u.targetUp[e.ID] = up
	touched[up] = true
}

// rebuildBalancer compiles the balancer of upstream id into its slot
// (targets may arrive before their upstream: they wait for it).
func (b *Builder) rebuildBalancer(id string) {
	u := &b.ups
	bu := u.upstreams[id]
	if bu == nil {
		if len(u.targets[id]) == 0 {
			delete(u.targets, id)
		}
		return
	}
	ts := make([]balancer.Target, 0, len(u.targets[id]))
	for _, t := range u.targets[id] {
		ts = append(ts, t)
	}
	b.ownBalancers()
	u.balancers[bu.slot] = balancer.New(balancer.UpstreamOf(&bu.e), ts)
}

func (b *Builder) takeSlot() int {
	u := &b.ups
	b.ownBalancers()
	if n := len(u.free); n > 0 {
		slot := u.free[n-1]
		u.free = u.free[:n-1]
		return slot
	}
	u.balancers = append(u.balancers, nil)
	return len(u.balancers) - 1
}

func (b *Builder) freeSlot(bu *builtUpstream) {
	b.ownBalancers()
	b.ups.balancers[bu.slot] = nil
	b.ups.free = append(b.ups.free, bu.slot)
}

func (b *Builder) ownBalancers() {
	if b.ups.shared {
		b.ups.balancers = slices.Clone(b.ups.balancers)
		b.ups.shared = false
	}
}

// upstreamSlot is the slot+1 of the upstream named host, 0 for none.
func (b *Builder) upstreamSlot(host string) int {
	if bu := b.ups.byName[host]; bu != nil {
		return bu.slot + 1
	}
	return 0
}

// refileServicesNamed points the services whose host is one of names at
// the upstream now of that name (or at none), and re-files their routes.
// It scans the services: upstreams are created, renamed and deleted
// rarely, targets (the frequent change) never come here.
func (b *Builder) refileServicesNamed(names map[string]bool, w *[]error) {
	if len(names) == 0 {
		return
	}
	for _, svc := range slices.Clone(b.services) {
		if !names[svc.host] || svc.upstream == b.upstreamSlot(svc.host) {
			continue
		}
		b.ownServices()
		moved := *svc
		moved.upstream = b.upstreamSlot(svc.host)
		b.services[svc.idx], b.svcByID[svc.id] = &moved, &moved
		b.refreshRoutes(svc.id, w)
	}
}

// upstreamIDs adds the upstream and target ids to a full build's set.
func (b *Builder) upstreamIDs(ids map[string]bool) {
	for id := range b.ups.upstreams {
		ids[id] = true
	}
	for id := range b.ups.targetUp {
		ids[id] = true
	}
}
