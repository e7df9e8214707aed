package node

import (
	"testing"

	"github.com/grapevine-gw/grapevine/store"
)

// TestConfigHashIsOrderFreeAndIncremental checks the running config hash:
// the same entities give the same hash whatever order they arrived in and
// whatever changes came and went on the way; any difference changes it.
func TestConfigHashIsOrderFreeAndIncremental(t *testing.T) {
	a, b := newConfigState(), newConfigState()
	empty := a.hash()
	for i := 0; i < 5; i++ {
		putRow(t, a, store.Routes.Name, benchRouteRow(t, i, "/r"))
	}
	for i := 4; i >= 0; i-- {
		putRow(t, b, store.Routes.Name, benchRouteRow(t, i, "/other"))
		putRow(t, b, store.Routes.Name, benchRouteRow(t, i, "/r"))
	}
	putRow(t, b, store.Routes.Name, benchRouteRow(t, 9, "/gone"))
	b.remove(entityKey{Table: store.Routes.Name, ID: benchID(2, 9)})
	if a.hash() != b.hash() {
		t.Errorf("got hashes %s and %s for the same routes, want them equal", a.hash(), b.hash())
	}
	if a.hash() == empty {
		t.Errorf("got the empty configuration's hash %s for five routes", empty)
	}
	before := a.hash()
	putRow(t, a, store.Routes.Name, benchRouteRow(t, 2, "/changed"))
	if a.hash() == before {
		t.Errorf("got hash %s unchanged after a route changed", before)
	}
	for i := 0; i < 5; i++ {
		a.remove(entityKey{Table: store.Routes.Name, ID: benchID(2, i)})
	}
	if a.hash() != empty {
		t.Errorf("got hash %s after removing everything, want the empty configuration's %s", a.hash(), empty)
	}
}

// TestSnapshotIsIncremental checks that the state hands the builder only
// what changed, and that the result serves what a full build serves.
func TestSnapshotIsIncremental(t *testing.T) {
	s := newConfigState()
	for i := 0; i < 20; i++ {
		putRow(t, s, store.Routes.Name, benchRouteRow(t, i, "/r"))
	}
	if _, w := s.snapshot(); len(w) > 0 {
		t.Fatalf("warnings: %v", w)
	}
	putRow(t, s, store.Routes.Name, benchRouteRow(t, 3, "/changed"))
	s.remove(entityKey{Table: store.Routes.Name, ID: benchID(2, 4)})
	if len(s.dirty) != 2 {
		t.Fatalf("got %d entities to rebuild, want the 2 changed", len(s.dirty))
	}
	putRow(t, s, store.Routes.Name, benchRouteRow(t, 5, "/changed-too"))
	snap, _ := s.snapshot()
	full := newConfigState()
	full.services, full.routes = s.services, s.routes
	want, _ := full.snapshot()
	if snap.Routes() != want.Routes() || snap.Routes() != 19 {
		t.Errorf("got %d routes, a full build %d; want 19", snap.Routes(), want.Routes())
	}
}

func putRow(t *testing.T, s *configState, table string, row store.Row) {
	t.Helper()
	if err := s.put(table, row); err != nil {
		t.Fatal(err)
	}
}
