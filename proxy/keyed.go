package proxy

import "sync"

// Keyed is state kept per entity id that outlives snapshot swaps: a
// balancer's target health, a rate-limit counter, a log batch. The Server
// owns every Keyed made by NewKeyed and, on each Swap, drops the values of
// the entities the new snapshot no longer has (the ids the Builder removed
// since the snapshot before; after a full build, every id it lacks), so
// state lives exactly as long as its entity. The upstream client pool
// keeps connections across swaps the same way (bind.go).
type Keyed[V any] struct {
	mu   sync.RWMutex // guards m
	m    map[string]*V
	make func(id string) *V
	drop func(*V) // may be nil
}

// NewKeyed makes a Keyed owned by s: make builds the value for an id on
// first use, drop (optional) releases a value whose entity is gone.
func NewKeyed[V any](s *Server, make func(id string) *V, drop func(*V)) *Keyed[V] {
	k := &Keyed[V]{m: map[string]*V{}, make: make, drop: drop}
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	s.keyed = append(s.keyed, k)
	return k
}

// Get returns the value for id, made on first use. Safe from any goroutine.
func (k *Keyed[V]) Get(id string) *V {
	k.mu.RLock()
	v, ok := k.m[id]
	k.mu.RUnlock()
	if ok {
		return v
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if v, ok = k.m[id]; !ok {
		v = k.make(id)
		k.m[id] = v
	}
	return v
}

// Len is the number of ids with a value.
func (k *Keyed[V]) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.m)
}

// forget drops the values of gone ids, or after a full build of every id
// that snap lacks.
func (k *Keyed[V]) forget(snap *Snapshot) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if snap.ids != nil {
		for id, v := range k.m {
			if !snap.ids[id] {
				k.release(id, v)
			}
		}
		return
	}
	for _, id := range snap.removed {
		if v, ok := k.m[id]; ok {
			k.release(id, v)
		}
	}
}

func (k *Keyed[V]) release(id string, v *V) {
	delete(k.m, id)
	if k.drop != nil {
		k.drop(v)
	}
}

// keyedState is what the Server needs of a Keyed of any type.
type keyedState interface{ forget(*Snapshot) }
