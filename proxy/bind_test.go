package proxy

import (
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
)

// TestSwapBindsOnlyChangedServices checks the incremental client binding:
// an unchanged service keeps its client (and its idle connections), a
// client shared by two services stays while either uses it, and a client
// no service uses any more leaves the pool.
func TestSwapBindsOnlyChangedServices(t *testing.T) {
	s := New(DefaultConfig())
	b := NewBuilder()
	b.Apply(SnapshotChange{Put: SnapshotInput{Services: []entity.Service{
		testService(t, "s1", "10.0.0.1:80"), testService(t, "s2", "10.0.0.1:80"), testService(t, "s3", "10.0.0.3:80"),
	}}})
	s.Swap(b.Snapshot())
	first := s.state.Load()
	clientOf := func(a *active, id string) *upstreamClient {
		for i, svc := range a.snap.services {
			if svc.id == id {
				return a.clients[i]
			}
		}
		return nil
	}
	shared, other := clientOf(first, "s2"), clientOf(first, "s3")
	if shared == nil || shared != clientOf(first, "s1") {
		t.Fatalf("got clients %p and %p for s1 and s2, want one shared client", clientOf(first, "s1"), shared)
	}

	b.Apply(SnapshotChange{Deleted: SnapshotIDs{Services: []string{"s1"}}})
	s.Swap(b.Snapshot())
	if got := clientOf(s.state.Load(), "s2"); got != shared {
		t.Errorf("after deleting s1: got client %p for s2, want the shared %p", got, shared)
	}
	if got := clientOf(s.state.Load(), "s3"); got != other {
		t.Errorf("after deleting s1: got client %p for s3, want the unchanged %p", got, other)
	}
	if _, ok := s.pool.clients[shared.key]; !ok {
		t.Errorf("after deleting s1: the client s2 still uses left the pool")
	}

	b.Apply(SnapshotChange{Deleted: SnapshotIDs{Services: []string{"s3"}}})
	s.Swap(b.Snapshot())
	if _, ok := s.pool.clients[other.key]; ok {
		t.Errorf("after deleting s3: got its client still pooled, want it gone")
	}
	if got, want := len(s.pool.clients), 1; got != want {
		t.Errorf("got %d pooled clients, want %d", got, want)
	}
}
