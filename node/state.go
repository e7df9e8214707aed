package node

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
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
	// others holds the configuration kinds the proxy does not read yet,
	// by table, then id, as their kinds decode them.
	others map[string]map[string]any
}

func newConfigState() *configState {
	return &configState{services: map[string]entity.Service{}, routes: map[string]entity.Route{},
		others: map[string]map[string]any{}}
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
func (s *configState) replaceAll(rows map[string][]store.Row) error {
	fresh := newConfigState()
	for table, list := range rows {
		for _, row := range list {
			if err := fresh.put(table, row); err != nil {
				return err
			}
		}
	}
	*s = *fresh
	return nil
}

// put stores one entity row read from the database, decoded by its kind.
func (s *configState) put(table string, row store.Row) error {
	k, ok := entity.KindByName(table)
	if !ok || !k.Config {
		return fmt.Errorf("no configuration table %q", table)
	}
	v, err := k.Decode(row.Doc)
	if err != nil {
		return fmt.Errorf("decoding %s %s: %w", table, row.ID, err)
	}
	switch e := v.(type) {
	case entity.Service:
		s.services[row.ID] = e
	case entity.Route:
		s.routes[row.ID] = e
	default:
		if s.others[table] == nil {
			s.others[table] = map[string]any{}
		}
		s.others[table][row.ID] = v
	}
	return nil
}

// remove forgets an entity that no longer exists in the database.
func (s *configState) remove(key entityKey) {
	switch key.Table {
	case store.Services.Name:
		delete(s.services, key.ID)
	case store.Routes.Name:
		delete(s.routes, key.ID)
	default:
		delete(s.others[key.Table], key.ID)
	}
}

// snapshot builds the proxy's routing snapshot from the current state.
func (s *configState) snapshot() (*proxy.Snapshot, []error) {
	return proxy.NewSnapshot(sortedValues(s.services), sortedValues(s.routes))
}

// hash is a content hash of the configuration: equal on every node that
// serves the same entities, whatever order they arrived in.
func (s *configState) hash() string {
	h := sha256.New()
	for _, svc := range sortedValues(s.services) {
		writeEntity(h, "services", svc)
	}
	for _, route := range sortedValues(s.routes) {
		writeEntity(h, "routes", route)
	}
	for _, table := range sortedKeys(s.others) {
		for _, v := range sortedValues(s.others[table]) {
			writeEntity(h, table, v)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func writeEntity(h hash.Hash, table string, v any) {
	doc, _ := json.Marshal(v) // entity types always marshal
	_, _ = h.Write([]byte(table))
	_, _ = h.Write(doc)
	_, _ = h.Write([]byte{'\n'})
}

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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
