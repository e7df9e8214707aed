package node

import (
	"fmt"
	"sort"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/store"
)

// configState is the node's copy of the configuration the proxy serves:
// every entity by id, as last read from the database. Owned by the applier
// goroutine; the proxy only ever sees immutable snapshots built from it.
type configState struct {
	services map[string]entity.Service
	routes   map[string]entity.Route
	plugins  map[string]entity.Plugin
	// compile turns a plugin entity into the proxy's instance (nil for
	// one that does not run); set by the applier (plugins.go).
	compile func(*entity.Plugin) (*proxy.PluginInstance, error)
	// forget tells the plugins a plugin entity is gone (plugins.go).
	forget func(id string)

	// others holds the configuration kinds the proxy does not read yet,
	// by table, then id, as their kinds decode them.
	others map[string]map[string]any

	// digest is the config hash kept up to date per entity (confighash.go).
	digest  configDigest
	digests map[entityKey]entityDigest
	// builder holds what the last snapshot was built from, nil until the
	// first snapshot; dirty names the entities changed since.
	builder *proxy.Builder
	dirty   map[entityKey]bool
}

func newConfigState() *configState {
	return &configState{
		services: map[string]entity.Service{}, routes: map[string]entity.Route{},
		plugins: map[string]entity.Plugin{},
		others:  map[string]map[string]any{},
		digests: map[entityKey]entityDigest{}, dirty: map[entityKey]bool{},
	}
}

// tables are the entity tables whose rows make up the proxy's
// configuration: every registered kind marked Config.
func tables() []store.Table {
	var out []store.Table
	for _, k := range entity.Kinds() {
		if k.Config {
			out = append(out, store.TableOf(k))
		}
	}
	return out
}

// replaceAll swaps in a whole configuration read at one point in time.
// Decoding and hashing every row is most of a full reload's work: it runs
// on every core (decodeRows), then the entities go in one by one.
func (s *configState) replaceAll(rows map[string][]store.Row) error {
	fresh := newConfigState()
	fresh.compile, fresh.forget = s.compile, s.forget
	fresh.reserve(rows)
	decoded, err := decodeRows(rows)
	if err != nil {
		return err
	}
	for _, d := range decoded {
		fresh.putDecoded(d)
	}
	*s = *fresh
	return nil
}

// reserve sizes the maps for rows: filled one entity at a time, tens of
// thousands of them grew and rehashed them over and over.
func (s *configState) reserve(rows map[string][]store.Row) {
	n := rowCount(rows)
	s.services = make(map[string]entity.Service, len(rows[store.Services.Name]))
	s.routes = make(map[string]entity.Route, len(rows[store.Routes.Name]))
	s.plugins = make(map[string]entity.Plugin, len(rows[entity.Plugins.Name]))
	s.digests = make(map[entityKey]entityDigest, n)
}

// rowCount is how many rows rows holds, all tables together.
func rowCount(rows map[string][]store.Row) int {
	n := 0
	for _, list := range rows {
		n += len(list)
	}
	return n
}

// decodedRow is one entity row decoded by its kind, with its digest.
type decodedRow struct {
	table, id string
	v         any
	digest    entityDigest
}

// decodeRow decodes one entity row read from the database by its kind.
func decodeRow(table string, row store.Row) (decodedRow, error) {
	k, ok := entity.KindByName(table)
	if !ok || !k.Config {
		return decodedRow{}, fmt.Errorf("no configuration table %q", table)
	}
	v, err := k.Decode(row.Doc)
	if err != nil {
		return decodedRow{}, fmt.Errorf("decoding %s %s: %w", table, row.ID, err)
	}
	return decodedRow{table: table, id: row.ID, v: v, digest: digestEntity(table, row.Doc)}, nil
}

// put stores one entity row read from the database, decoded by its kind.
func (s *configState) put(table string, row store.Row) error {
	d, err := decodeRow(table, row)
	if err != nil {
		return err
	}
	s.putDecoded(d)
	return nil
}

// putDecoded stores one decoded entity.
func (s *configState) putDecoded(d decodedRow) {
	table, row, v := d.table, store.Row{ID: d.id}, d.v
	switch e := v.(type) {
	case entity.Service:
		s.services[row.ID] = e
	case entity.Route:
		s.routes[row.ID] = e
	case entity.Plugin:
		s.plugins[row.ID] = e
	default:
		if s.others[table] == nil {
			s.others[table] = map[string]any{}
		}
		s.others[table][row.ID] = v
	}
	s.changed(table, row.ID, &d.digest)
}

// remove forgets an entity that no longer exists in the database.
func (s *configState) remove(key entityKey) {
	switch key.Table {
	case store.Services.Name:
		delete(s.services, key.ID)
	case store.Routes.Name:
		delete(s.routes, key.ID)
	case entity.Plugins.Name:
		delete(s.plugins, key.ID)
		if s.forget != nil {
			s.forget(key.ID)
		}
	default:
		delete(s.others[key.Table], key.ID)
	}
	s.changed(key.Table, key.ID, nil)
}

// changed records a new version of an entity (its digest d), or its
// removal (nil): the hash takes its digest in place of the old one, and
// the next snapshot rebuilds it.
func (s *configState) changed(table, id string, d *entityDigest) {
	key := entityKey{Table: table, ID: id}
	if old, ok := s.digests[key]; ok {
		s.digest.sub(old)
		delete(s.digests, key)
	}
	if d != nil {
		s.digests[key] = *d
		s.digest.add(*d)
	}
	if s.builder != nil { // else the first snapshot is built from everything
		s.dirty[key] = true
	}
}

// snapshot builds the proxy's routing snapshot from the current state:
// the first one from everything, each later one from the previous by
// applying only the entities changed since (proxy.Builder).
func (s *configState) snapshot() (*proxy.Snapshot, []error) {
	if s.builder == nil {
		s.builder = proxy.NewBuilder()
		s.dirty = map[entityKey]bool{}
		in := proxy.SnapshotInput{
			Services: sortedValues(s.services), Routes: sortedValues(s.routes),
			Certificates:   othersOf[entity.Certificate](s, entity.Certificates.Name),
			SNIs:           othersOf[entity.SNI](s, entity.SNIs.Name),
			CACertificates: othersOf[entity.CACertificate](s, entity.CACertificates.Name),
		}
		var warnings []error
		for _, p := range sortedValues(s.plugins) {
			if inst := s.compilePlugin(&p, &warnings); inst != nil {
				in.Plugins = append(in.Plugins, *inst)
			}
		}
		s.balancerInput(&in)
		warnings = append(warnings, s.builder.Apply(proxy.SnapshotChange{Put: in})...)
		return s.builder.Snapshot(), warnings
	}
	change, warnings := s.pendingChange()
	warnings = append(warnings, s.builder.Apply(change)...)
	return s.builder.Snapshot(), warnings
}

// compilePlugin compiles a plugin entity; nil for one that does not run
// (disabled, or not on the proxy yet: a warning says so).
func (s *configState) compilePlugin(p *entity.Plugin, warnings *[]error) *proxy.PluginInstance {
	if s.compile == nil {
		return nil
	}
	inst, err := s.compile(p)
	if err != nil {
		*warnings = append(*warnings, err)
		return nil
	}
	return inst
}

// pendingChange is the change from the last snapshot to the current state.
func (s *configState) pendingChange() (proxy.SnapshotChange, []error) {
	var c proxy.SnapshotChange
	var warnings []error
	for key := range s.dirty {
		if s.balancerChange(&c, key) {
			continue
		}
		switch key.Table {
		case store.Services.Name:
			if svc, ok := s.services[key.ID]; ok {
				c.Put.Services = append(c.Put.Services, svc)
			} else {
				c.Deleted.Services = append(c.Deleted.Services, key.ID)
			}
		case store.Routes.Name:
			if route, ok := s.routes[key.ID]; ok {
				c.Put.Routes = append(c.Put.Routes, route)
			} else {
				c.Deleted.Routes = append(c.Deleted.Routes, key.ID)
			}
		case entity.Plugins.Name:
			p, ok := s.plugins[key.ID]
			var inst *proxy.PluginInstance
			if ok {
				inst = s.compilePlugin(&p, &warnings)
			}
			if inst != nil {
				c.Put.Plugins = append(c.Put.Plugins, *inst)
			} else {
				c.Deleted.Plugins = append(c.Deleted.Plugins, key.ID)
			}
		default:
			s.pendingTLS(key, &c)
		}
	}
	s.dirty = map[entityKey]bool{} // not clear: that costs the map's peak size
	return c, warnings
}

// hash is a content hash of the configuration: equal on every node that
// serves the same entities, whatever order they arrived in.
func (s *configState) hash() string {
	return s.digest.String()
}

// sortedValues returns a map's values ordered by key (entity id).
func sortedValues[T any](m map[string]T) []T {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]T, len(ids))
	for i, id := range ids {
		out[i] = m[id]
	}
	return out
}

// pendingTLS adds a changed certificate, SNI or CA certificate to c.
func (s *configState) pendingTLS(key entityKey, c *proxy.SnapshotChange) {
	v, ok := s.others[key.Table][key.ID]
	switch key.Table {
	case entity.Certificates.Name:
		if ok {
			c.Put.Certificates = append(c.Put.Certificates, v.(entity.Certificate))
		} else {
			c.Deleted.Certificates = append(c.Deleted.Certificates, key.ID)
		}
	case entity.SNIs.Name:
		if ok {
			c.Put.SNIs = append(c.Put.SNIs, v.(entity.SNI))
		} else {
			c.Deleted.SNIs = append(c.Deleted.SNIs, key.ID)
		}
	case entity.CACertificates.Name:
		if ok {
			c.Put.CACertificates = append(c.Put.CACertificates, v.(entity.CACertificate))
		} else {
			c.Deleted.CACertificates = append(c.Deleted.CACertificates, key.ID)
		}
	}
}

// othersOf returns the entities of one of the other tables, ordered by id.
func othersOf[T any](s *configState, table string) []T {
	m := make(map[string]T, len(s.others[table]))
	for id, v := range s.others[table] {
		m[id] = v.(T)
	}
	return sortedValues(m)
}
