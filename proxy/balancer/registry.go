package balancer

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// Registry keeps each upstream's State on this node, by upstream id, for
// as long as the upstream exists: a rebuilt balancer (a target added, the
// algorithm changed) finds the health, connection counts and latencies of
// the addresses it keeps. Safe for use from any goroutine.
type Registry struct {
	log    zerolog.Logger
	ctx    context.Context // ends the active checkers
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex // guards states
	states map[string]*State
}

// State is one upstream's state on this node.
type State struct {
	id  string
	reg *Registry
	rr  atomic.Uint64 // round-robin pointer, and least-* tie breaker

	live atomic.Pointer[Live] // the newest binding, which probes follow

	mu      sync.Mutex // guards the fields below
	addrs   map[string]*addrState
	checker *checker // nil when no probes run
}

// NewRegistry returns an empty registry logging to log.
func NewRegistry(log zerolog.Logger) *Registry {
	ctx, cancel := context.WithCancel(context.Background())
	return &Registry{log: log, ctx: ctx, cancel: cancel, states: map[string]*State{}}
}

// Bind binds b to its upstream's state: addresses it shares with the
// previous binding keep their state, the others start healthy, and the
// active checker starts, stops or restarts when its settings changed.
func (r *Registry) Bind(b *Balancer) *Live {
	r.mu.Lock()
	st := r.states[b.Upstream.ID]
	if st == nil {
		st = &State{id: b.Upstream.ID, reg: r, addrs: map[string]*addrState{}}
		r.states[b.Upstream.ID] = st
	}
	r.mu.Unlock()

	st.mu.Lock()
	defer st.mu.Unlock()
	l := &Live{B: b, st: st, addrs: make([]*addrState, len(b.Addrs))}
	keep := make(map[string]bool, len(b.Addrs))
	for i, a := range b.Addrs {
		as := st.addrs[a.key]
		if as == nil {
			as = &addrState{key: a.key, target: a.Target, dial: a.Dial}
			as.healthy.Store(true)
			st.addrs[a.key] = as
		}
		l.addrs[i], keep[a.key] = as, true
	}
	for k := range st.addrs {
		if !keep[k] {
			delete(st.addrs, k)
		}
	}
	prev := st.live.Swap(l)
	if prev == nil || !reflect.DeepEqual(prev.B.Upstream.Checks.Active, b.Upstream.Checks.Active) ||
		prev.B.checksOn != b.checksOn {
		st.restartCheckerLocked(b)
	}
	return l
}

// Forget drops the state of an upstream that is gone and stops its probes.
func (r *Registry) Forget(id string) {
	r.mu.Lock()
	st := r.states[id]
	delete(r.states, id)
	r.mu.Unlock()
	if st != nil {
		st.mu.Lock()
		st.stopCheckerLocked()
		st.mu.Unlock()
	}
}

// Has reports whether the registry holds state for the upstream id.
func (r *Registry) Has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.states[id] != nil
}

// IDs lists the upstreams with state.
func (r *Registry) IDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.states))
	for id := range r.states {
		out = append(out, id)
	}
	return out
}

// Close stops every active checker and waits for them.
func (r *Registry) Close() {
	r.cancel()
	r.wg.Wait()
}

func (r *Registry) state(id string) *State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.states[id]
}

// ErrUnknownUpstream is returned for an upstream without a balancer here.
var ErrUnknownUpstream = errors.New("no balancer")

// SetHealth sets the health of a target's addresses by hand (Kong's
// post_health): all of them when ip is "", else the one at ip:port. The
// error is Kong's message, answered with 400.
func (r *Registry) SetHealth(upstreamID, hostname, ip string, port int, healthy bool) error {
	st := r.state(upstreamID)
	if st == nil || st.live.Load() == nil {
		return fmt.Errorf("Upstream %s has no balancer: %w", upstreamID, ErrUnknownUpstream)
	}
	l := st.live.Load()
	if !l.B.checksOn {
		return fmt.Errorf("no healthchecker found for %s", l.B.Upstream.Name)
	}
	found := false
	for i, a := range l.B.Addrs {
		// A whole target is named by its own port, one address by its
		// own (an SRV record's may differ).
		if a.Hostname != hostname || ip == "" && a.TargetPort != port || ip != "" && (a.IP != ip || a.Port != port) {
			continue
		}
		found = true
		st.setHealth(l.addrs[i], healthy, "set through the Admin API")
	}
	if !found && ip != "" {
		return fmt.Errorf("target not found for %s:%d", ip, port)
	}
	return nil
}

// setHealth records a change of an address's health and logs it: an
// operator must see a target leave and rejoin rotation.
func (st *State) setHealth(a *addrState, healthy bool, why string) {
	a.mu.Lock()
	a.successes, a.tcpFailures, a.timeouts, a.httpFailures = 0, 0, 0, 0
	a.mu.Unlock()
	if a.healthy.Swap(healthy) == healthy {
		return
	}
	name := st.id
	if l := st.live.Load(); l != nil {
		name = l.B.Upstream.Name
	}
	if healthy {
		st.reg.log.Info().Str("upstream", name).Str("target", a.target).Str("address", a.dial).Str("reason", why).
			Msg("target healthy: back in rotation")
		return
	}
	st.reg.log.Warn().Str("upstream", name).Str("target", a.target).Str("address", a.dial).Str("reason", why).
		Msg("target unhealthy: out of rotation")
}
