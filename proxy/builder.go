package proxy

import (
	"crypto/tls"
	"fmt"
	"reflect"
	"slices"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy/tlsconf"
)

// SnapshotChange is a batch of entity changes: Put holds entities added or
// changed, Deleted the ids of those removed, both per kind. A batch names
// each entity at most once, in its final state (Apply deletes first).
type SnapshotChange struct {
	Put     SnapshotInput
	Deleted SnapshotIDs
}

// SnapshotIDs names entities by kind and id.
type SnapshotIDs struct {
	Services       []string
	Routes         []string
	Plugins        []string
	Certificates   []string
	SNIs           []string
	CACertificates []string
	// Upstreams and Targets compile to balancers (builder_upstreams.go).
	Upstreams []string
	Targets   []string
}

// Builder keeps what it takes to build the next snapshot from the last one
// in O(change): every entity with what was compiled from it, and the route
// index, which it changes in place until Snapshot publishes it. A Builder
// belongs to one goroutine (the node's applier); the snapshots it returns
// are immutable and may be read by any number of goroutines.
type Builder struct {
	edit  *edit
	index *routeIndex

	services       []*service // enabled services, dense, by idx
	servicesShared bool       // a published snapshot holds services: copy before writing
	svcByID        map[string]*service
	disabled       map[string]bool

	routes    map[string]*builtRoute
	bySvc     map[string]map[string]bool // service id → ids of the routes naming it
	placed    int                        // routes in the index
	sniRoutes int                        // placed routes with snis

	plugins map[string]*PluginInstance
	scoped  map[string]map[string]*PluginInstance // route, service or "" (global) id → instances by id

	ups upstreamState // upstreams, targets and their balancers

	tls *tlsconf.Store // certificates, SNIs and CA certificates, parsed
	// upstreamTLSs are the upstream TLS configurations by fingerprint, so
	// services with equal settings share one and keep it across
	// snapshots (it keys their connection pool).
	upstreamTLSs map[string]*tls.Config

	removed   []string // ids deleted since the last snapshot
	published bool     // a snapshot was taken
}

// builtRoute is one route entity and its compiled matchers.
type builtRoute struct {
	e        entity.Route
	compiled []*matcher // compiled once per version of e; route fields unset
	err      error      // why e cannot be compiled
	placed   []*matcher // copies of compiled, bound to a route, in the index
}

// NewBuilder returns a Builder of the empty configuration.
func NewBuilder() *Builder {
	return &Builder{
		edit:     &edit{},
		svcByID:  map[string]*service{},
		disabled: map[string]bool{},
		routes:   map[string]*builtRoute{},
		bySvc:    map[string]map[string]bool{},
		plugins:  map[string]*PluginInstance{},
		scoped:   map[string]map[string]*PluginInstance{},
		ups:      newUpstreamState(),
		tls:      tlsconf.NewStore(),

		upstreamTLSs: map[string]*tls.Config{},
	}
}

// Apply applies a batch of changes. The warnings name routes left out
// because they cannot be compiled; each is reported once, when compiled.
func (b *Builder) Apply(c SnapshotChange) []error {
	var w []error
	tlsChanged := b.applyTLS(c, &w)
	b.index = b.index.mutable(b.edit)
	for _, id := range c.Deleted.Routes {
		b.deleteRoute(id)
	}
	for _, id := range c.Deleted.Services {
		delete(b.disabled, id)
		if old := b.svcByID[id]; old != nil {
			b.dropService(old, &w)
		}
		b.refreshRoutes(id, &w)
	}
	upstreamNames := b.applyUpstreams(c, &w)
	for i := range c.Put.Services {
		b.putService(&c.Put.Services[i], &w)
	}
	b.refileServicesNamed(upstreamNames, &w)
	b.refreshTLSServices(tlsChanged, &w)
	// A first build files each route once, its plugins known already;
	// scoped after the routes, the plugins re-filed every route they
	// touch (a tenth of a full reload of ten thousand services).
	first := len(b.routes) == 0 && len(b.plugins) == 0
	if first {
		b.putPlugins(c.Put.Plugins)
	}
	for i := range c.Put.Routes {
		b.putRoute(&c.Put.Routes[i], &w)
	}
	if !first {
		b.applyPlugins(c, &w)
	}
	b.removed = append(append(append(b.removed, c.Deleted.Routes...), c.Deleted.Services...), c.Deleted.Plugins...)
	b.removed = append(append(b.removed, c.Deleted.Upstreams...), c.Deleted.Targets...)
	return w
}

// Snapshot publishes the configuration as it stands. Whatever the snapshot
// holds is frozen: the Builder copies it before its next change.
func (b *Builder) Snapshot() *Snapshot {
	snap := &Snapshot{index: b.index, services: b.services, routes: b.placed, removed: b.removed, balancers: b.ups.balancers,
		certs: b.tls.Table(), sniRoutes: b.sniRoutes}
	if !b.published {
		snap.ids, snap.removed = b.allIDs(), nil
	}
	b.edit, b.removed, b.published = &edit{}, nil, true
	b.servicesShared, b.ups.shared = true, true
	return snap
}

// allIDs is the set of every entity id the Builder has.
func (b *Builder) allIDs() map[string]bool {
	ids := make(map[string]bool, len(b.svcByID)+len(b.disabled)+len(b.routes)+len(b.plugins))
	for _, m := range []map[string]*service{b.svcByID} {
		for id := range m {
			ids[id] = true
		}
	}
	for id := range b.disabled {
		ids[id] = true
	}
	for id := range b.routes {
		ids[id] = true
	}
	for id := range b.plugins {
		ids[id] = true
	}
	b.upstreamIDs(ids)
	return ids
}

func (b *Builder) putService(e *entity.Service, w *[]error) {
	old := b.svcByID[e.ID]
	delete(b.disabled, e.ID)
	if !e.Enabled {
		b.disabled[e.ID] = true
		if old != nil {
			b.dropService(old, w)
		}
		b.refreshRoutes(e.ID, w)
		return
	}
	b.ownServices()
	idx := len(b.services)
	if old != nil {
		idx = old.idx
	} else {
		b.services = append(b.services, nil)
	}
	svc := newService(idx, e, b.upstreamTLS(e, w))
	svc.upstream = b.upstreamSlot(e.Host)
	b.services[idx], b.svcByID[e.ID] = svc, svc
	b.refreshRoutes(e.ID, w)
}

// dropService takes svc out of the dense services list, moving the last
// service into its slot (its routes are rebound to the moved copy).
func (b *Builder) dropService(svc *service, w *[]error) {
	b.ownServices()
	delete(b.svcByID, svc.id)
	last := len(b.services) - 1
	if svc.idx != last {
		moved := *b.services[last]
		moved.idx = svc.idx
		b.services[svc.idx], b.svcByID[moved.id] = &moved, &moved
		defer b.refreshRoutes(moved.id, w)
	}
	b.services[last] = nil
	b.services = b.services[:last]
}

func (b *Builder) ownServices() {
	if b.servicesShared {
		b.services = slices.Clone(b.services)
		b.servicesShared = false
	}
}

// refreshRoutes re-files the routes of a service that changed, so they
// point to its new version (or answer 503, or leave, as it now requires).
func (b *Builder) refreshRoutes(serviceID string, w *[]error) {
	for id := range b.bySvc[serviceID] {
		br := b.routes[id]
		b.unplace(br)
		b.place(br, w)
	}
}

func (b *Builder) putRoute(e *entity.Route, w *[]error) {
	br := &builtRoute{e: *e}
	if old := b.routes[e.ID]; old != nil {
		b.unplace(old)
		b.unlink(old)
		if reflect.DeepEqual(old.e, *e) {
			br.compiled, br.err = old.compiled, old.err
		}
	}
	b.routes[e.ID] = br
	b.link(br)
	b.place(br, w)
}

func (b *Builder) deleteRoute(id string) {
	if br := b.routes[id]; br != nil {
		b.unplace(br)
		b.unlink(br)
		delete(b.routes, id)
	}
}

func (b *Builder) link(br *builtRoute) {
	if br.e.Service == nil {
		return
	}
	set := b.bySvc[br.e.Service.ID]
	if set == nil {
		set = map[string]bool{}
		b.bySvc[br.e.Service.ID] = set
	}
	set[br.e.ID] = true
}

func (b *Builder) unlink(br *builtRoute) {
	if br.e.Service == nil {
		return
	}
	set := b.bySvc[br.e.Service.ID]
	delete(set, br.e.ID)
	if len(set) == 0 {
		delete(b.bySvc, br.e.Service.ID)
	}
}

// place files a route's matchers in the index, unless its service is
// disabled, it is not an HTTP route or it cannot be compiled.
func (b *Builder) place(br *builtRoute, w *[]error) {
	e := &br.e
	if e.Service != nil && b.disabled[e.Service.ID] || !isHTTPRoute(e) {
		return
	}
	if br.compiled == nil && br.err == nil {
		br.compiled, br.err = compileRoute(e, nil)
		if br.err != nil {
			br.err = fmt.Errorf("route %s skipped: %w", e.ID, br.err)
			*w = append(*w, br.err)
		}
	}
	if br.err != nil {
		return
	}
	r := newRoute(e, b.svcByID)
	r.plan = b.planFor(e)
	br.placed = make([]*matcher, len(br.compiled))
	for i, c := range br.compiled {
		m := *c
		m.route = r
		br.placed[i] = &m
		b.index.update(b.edit, &m, true)
	}
	b.placed++
	if len(e.SNIs) > 0 {
		b.sniRoutes++
	}
}

func (b *Builder) unplace(br *builtRoute) {
	if br.placed == nil {
		return
	}
	for _, m := range br.placed {
		b.index.update(b.edit, m, false)
	}
	br.placed = nil
	b.placed--
	if len(br.e.SNIs) > 0 {
		b.sniRoutes--
	}
}

// applyPlugins applies the batch's plugin changes, then re-files the
// routes whose plans they change: one route, a service's routes, or all
// of them for a global plugin.
func (b *Builder) applyPlugins(c SnapshotChange, w *[]error) {
	touched := map[string]bool{} // scope ids: route, service, or "" for all
	for _, id := range c.Deleted.Plugins {
		if old := b.plugins[id]; old != nil {
			b.unscope(old)
			touched[scopeID(old)] = true
			delete(b.plugins, id)
		}
	}
	for i := range c.Put.Plugins {
		p := c.Put.Plugins[i]
		if old := b.plugins[p.ID]; old != nil {
			b.unscope(old)
			touched[scopeID(old)] = true
		}
		b.plugins[p.ID] = &p
		b.scope(&p)
		touched[scopeID(&p)] = true
	}
	if touched[""] {
		for _, br := range b.routes {
			b.refreshRoute(br, w)
		}
		return
	}
	for id := range touched {
		if br := b.routes[id]; br != nil {
			b.refreshRoute(br, w)
		}
		b.refreshRoutes(id, w)
	}
}

// putPlugins adds plugins to a Builder that has none and no routes:
// there is nothing to re-file.
func (b *Builder) putPlugins(plugins []PluginInstance) {
	for i := range plugins {
		p := plugins[i]
		if old := b.plugins[p.ID]; old != nil {
			b.unscope(old) // the same id twice in one batch: the last wins
		}
		b.plugins[p.ID] = &p
		b.scope(&p)
	}
}

// scopeID is the id whose routes a plugin applies to: its route's, its
// service's, or "" for a global plugin.
func scopeID(p *PluginInstance) string {
	if p.RouteID != "" {
		return p.RouteID
	}
	return p.ServiceID
}

func (b *Builder) scope(p *PluginInstance) {
	id := scopeID(p)
	if b.scoped[id] == nil {
		b.scoped[id] = map[string]*PluginInstance{}
	}
	b.scoped[id][p.ID] = p
}

func (b *Builder) unscope(p *PluginInstance) {
	id := scopeID(p)
	delete(b.scoped[id], p.ID)
	if len(b.scoped[id]) == 0 {
		delete(b.scoped, id)
	}
}

func (b *Builder) refreshRoute(br *builtRoute, w *[]error) {
	b.unplace(br)
	b.place(br, w)
}

// planFor resolves the plugins of a route (see resolvePlan).
func (b *Builder) planFor(e *entity.Route) *phasePlan {
	if len(b.plugins) == 0 {
		return nil
	}
	serviceID := ""
	if e.Service != nil {
		serviceID = e.Service.ID
	}
	scopes := []string{e.ID, ""}
	if serviceID != "" {
		scopes = append(scopes, serviceID)
	}
	var candidates []*PluginInstance
	for _, id := range scopes {
		for _, p := range b.scoped[id] {
			candidates = append(candidates, p)
		}
	}
	return resolvePlan(e.ID, serviceID, candidates)
}
