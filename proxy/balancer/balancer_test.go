package balancer

import (
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func targets(weights ...int) []Target {
	out := make([]Target, len(weights))
	for i, w := range weights {
		host := "127.0.40." + strconv.Itoa(i+1)
		out[i] = Target{ID: fmt.Sprintf("t%d", i), Target: host + ":80", Host: host, Port: 80, Weight: w}
	}
	return out
}

func bind(t *testing.T, u Upstream, ts []Target) (*Registry, *Live) {
	t.Helper()
	reg := NewRegistry(zerolog.Nop())
	t.Cleanup(reg.Close)
	if u.ID == "" {
		u.ID = "u1"
	}
	return reg, reg.Bind(New(u, ts))
}

func pick(t *testing.T, l *Live, key string) *Address {
	t.Helper()
	var h Handle
	h.Reset()
	a, err := l.Pick(&h, []byte(key))
	if err != nil {
		t.Fatalf("pick: %v", err)
	}
	l.Done(&h, Answered, 200)
	return a
}

// Round-robin spreads picks exactly by weight (Kong's wheel,
// round_robin.lua), and a target of weight 0 gets none.
func TestRoundRobinFollowsWeights(t *testing.T) {
	_, l := bind(t, Upstream{Algorithm: RoundRobin}, targets(100, 50, 25, 0))
	counts := map[string]int{}
	const n = 10000
	for range n {
		counts[pick(t, l, "").Target]++
	}
	want := map[string]float64{"127.0.40.1:80": 100.0 / 175, "127.0.40.2:80": 50.0 / 175, "127.0.40.3:80": 25.0 / 175}
	for target, share := range want {
		if got := float64(counts[target]) / n; math.Abs(got-share) > 0.02 {
			t.Errorf("%s: got share %.3f, want %.3f ±0.02", target, got, share)
		}
	}
	if got := counts["127.0.40.4:80"]; got != 0 {
		t.Errorf("weight-0 target: got %d picks, want 0", got)
	}
}

// Consistent hashing sends a key to the same address every time, and
// when one of N targets goes only the keys it held move: about 1/N
// (consistent_hashing.lua, a Ketama continuum).
func TestConsistentHashingMovesOnlyTheRemovedTargetsKeys(t *testing.T) {
	const n, keys = 5, 20000
	u := Upstream{Algorithm: ConsistentHashing, Slots: 10000}
	_, before := bind(t, u, targets(100, 100, 100, 100, 100))
	_, after := bind(t, u, targets(100, 100, 100, 100, 100)[:n-1])
	moved, held := 0, 0
	for k := range keys {
		key := "key-" + strconv.Itoa(k)
		a, b := pick(t, before, key), pick(t, after, key)
		if again := pick(t, before, key); again.Target != a.Target {
			t.Fatalf("key %s: got %s then %s, want the same target", key, a.Target, again.Target)
		}
		if a.Target == "127.0.40.5:80" {
			held++
		}
		if a.Target != b.Target {
			moved++
			if a.Target != "127.0.40.5:80" {
				t.Fatalf("key %s moved from %s, which stayed", key, a.Target)
			}
		}
	}
	share := float64(moved) / keys
	if share > 1.0/n+0.05 || share < 1.0/n-0.05 {
		t.Errorf("got %.3f of keys moved, want about %.3f", share, 1.0/n)
	}
	if moved != held {
		t.Errorf("got %d keys moved, want the %d the removed target held", moved, held)
	}
}

// Least-connections picks the address with fewest requests in flight
// relative to its weight (least_connections.lua).
func TestLeastConnectionsPrefersTheLeastBusy(t *testing.T) {
	_, l := bind(t, Upstream{Algorithm: LeastConnections}, targets(100, 100))
	var busy Handle
	busy.Reset()
	first, err := l.Pick(&busy, nil) // stays in flight
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if got := pick(t, l, ""); got.Target == first.Target {
			t.Fatalf("got %s, the busy address, want the idle one", got.Target)
		}
	}
	l.Done(&busy, Answered, 200)
}

// Latency sends traffic to the address answering faster (latency.lua's
// EWMA).
func TestLatencyPrefersTheFaster(t *testing.T) {
	_, l := bind(t, Upstream{Algorithm: Latency}, targets(100, 100))
	l.addrs[0].ewma, l.addrs[1].ewma = 0.5, 0.01
	l.addrs[0].touched, l.addrs[1].touched = time.Now(), time.Now()
	for range 10 {
		if got := pick(t, l, ""); got.Target != "127.0.40.2:80" {
			t.Fatalf("got %s, want the faster 127.0.40.2:80", got.Target)
		}
	}
}

// A retry goes to another address while one is left.
func TestRetryAvoidsTriedAddresses(t *testing.T) {
	for _, alg := range []Algorithm{RoundRobin, ConsistentHashing, LeastConnections, Latency} {
		t.Run(strconv.Itoa(int(alg)), func(t *testing.T) {
			_, l := bind(t, Upstream{Algorithm: alg, Slots: 1000}, targets(100, 100, 100))
			var h Handle
			h.Reset()
			seen := map[string]bool{}
			for range 3 {
				a, err := l.Pick(&h, []byte("k"))
				if err != nil {
					t.Fatal(err)
				}
				seen[a.Target] = true
				l.Done(&h, TCPFailure, 0)
			}
			if len(seen) != 3 {
				t.Errorf("got %d distinct addresses over 3 tries, want 3", len(seen))
			}
		})
	}
}

// Passive checks: tcp_failures failures in a row take an address out
// until successes answers bring it back; with every address out the
// balancer is unhealthy (Kong answers 503). Kong's defaults count
// nothing: an upstream without counters never marks an address.
func TestPassiveHealth(t *testing.T) {
	var checks Checks
	checks.Passive.Unhealthy.TCPFailures = 2
	checks.Passive.Unhealthy.HTTPFailures = 1
	checks.Passive.Unhealthy.HTTPStatuses = []int{500, 503}
	checks.Passive.Healthy.Successes = 1
	checks.Passive.Healthy.HTTPStatuses = []int{200}
	reg, l := bind(t, Upstream{Algorithm: RoundRobin, Checks: checks}, targets(100))
	fail := func(o Outcome, status int) {
		var h Handle
		h.Reset()
		if _, err := l.Pick(&h, nil); err != nil {
			t.Fatalf("pick: %v", err)
		}
		l.Done(&h, o, status)
	}
	fail(TCPFailure, 0)
	if _, err := pickErr(l); err != nil {
		t.Fatalf("after 1 of 2 failures: got %v, want a peer", err)
	}
	fail(TCPFailure, 0)
	if _, err := pickErr(l); err != ErrUnhealthy {
		t.Fatalf("after 2 failures: got %v, want %v", err, ErrUnhealthy)
	}
	health, whole, _ := reg.Health("u1")
	if got := health["127.0.40.1:80"].Summary(); got != Unhealthy {
		t.Errorf("health: got %s, want %s", got, Unhealthy)
	}
	if whole.Health != Unhealthy {
		t.Errorf("balancer health: got %s, want %s", whole.Health, Unhealthy)
	}
	if err := reg.SetHealth("u1", "127.0.40.1", "", 80, true); err != nil {
		t.Fatal(err)
	}
	fail(Answered, 503)
	if _, err := pickErr(l); err != ErrUnhealthy {
		t.Fatalf("after a 503: got %v, want %v", err, ErrUnhealthy)
	}

	_, off := bind(t, Upstream{Algorithm: RoundRobin}, targets(100))
	for range 50 {
		var h Handle
		h.Reset()
		if _, err := off.Pick(&h, nil); err != nil {
			t.Fatalf("checks off: got %v, want a peer", err)
		}
		off.Done(&h, TCPFailure, 0)
	}
}

func pickErr(l *Live) (*Address, error) {
	var h Handle
	h.Reset()
	a, err := l.Pick(&h, nil)
	if err == nil {
		l.Done(&h, Answered, 0)
	}
	return a, err
}
