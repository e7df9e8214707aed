package balancer

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// addrState is what a node knows of one address from traffic and probes;
// it outlives the Balancers that list the address.
type addrState struct {
	key    string
	target string // names for the log
	dial   string

	healthy atomic.Bool
	conns   atomic.Int64 // requests in flight (least-connections)

	mu           sync.Mutex // guards the fields below
	successes    int        // health counters (lua-resty-healthcheck's)
	tcpFailures  int
	timeouts     int
	httpFailures int
	ewma         float64 // latency average, seconds (latency algorithm)
	touched      time.Time
}

// Live is a Balancer bound to its upstream's State: what a request picks
// from. The proxy gets one per upstream on each snapshot swap; requests
// still running on an older one report to the same State.
type Live struct {
	B     *Balancer
	st    *State
	addrs []*addrState // parallel to B.Addrs
}

// Handle carries one request's picks across its tries: the address of
// the current try, those tried before and the hash of its key.
type Handle struct {
	addr   int // index into B.Addrs of the current try; -1 before the first
	tried  [2]uint64
	hash   int
	hashed bool
	start  time.Time
}

// Reset prepares h for a new request.
func (h *Handle) Reset() { *h = Handle{addr: -1} }

func (h *Handle) wasTried(i int) bool {
	return i < 128 && h.tried[i/64]&(1<<(i%64)) != 0
}

func (h *Handle) markTried(i int) {
	if i < 128 {
		h.tried[i/64] |= 1 << (i % 64)
	}
}

// available reports whether address i may get traffic: a weight, and
// healthy when health checks are on.
func (l *Live) available(i int) bool {
	return l.B.Addrs[i].Weight > 0 && (!l.B.checksOn || l.addrs[i].healthy.Load())
}

// healthy is Kong's balancer health: some weight, and more than
// healthchecks.threshold percent of it available.
func (l *Live) healthy() bool {
	if l.B.totalWeight == 0 {
		return false
	}
	if !l.B.checksOn {
		return true
	}
	avail := 0
	for i := range l.addrs {
		if l.available(i) {
			avail += l.B.Addrs[i].Weight
		}
	}
	return float64(avail)*100/float64(l.B.totalWeight) > l.B.Upstream.Checks.Threshold
}

// Pick chooses the address of the next try; key is the request's hash
// key (consistent-hashing only). A retry avoids the addresses already
// tried while others are available. ErrUnhealthy and ErrNoPeers mean no
// address can be had.
func (l *Live) Pick(h *Handle, key []byte) (*Address, error) {
	if !l.healthy() {
		return nil, ErrUnhealthy
	}
	i := -1
	for _, skipTried := range [2]bool{true, false} {
		switch l.B.Upstream.Algorithm {
		case ConsistentHashing:
			i = l.pickHashed(h, key, skipTried)
		case LeastConnections:
			i = l.pickLeast(h, skipTried, l.connScore)
		case Latency:
			i = l.pickLeast(h, skipTried, l.latencyScore)
		default:
			i = l.pickRoundRobin(h, skipTried)
		}
		if i >= 0 || h.addr < 0 {
			break // a first try that found nothing will not find it again
		}
	}
	if i < 0 {
		return nil, ErrNoPeers
	}
	h.addr = i
	h.markTried(i)
	h.start = time.Now()
	l.addrs[i].conns.Add(1)
	return &l.B.Addrs[i], nil
}

func (l *Live) pickRoundRobin(h *Handle, skipTried bool) int {
	n := uint64(len(l.B.wheel))
	for range n {
		i := int(l.B.wheel[l.st.rr.Add(1)%n])
		if l.available(i) && !(skipTried && h.wasTried(i)) {
			return i
		}
	}
	return -1
}

// pickHashed walks the continuum down from the key's point to the first
// available address, as Kong's getPeer does.
func (l *Live) pickHashed(h *Handle, key []byte, skipTried bool) int {
	c := l.B.continuum
	if !h.hashed {
		h.hash, h.hashed = hashIndex(key, len(c)), true
	}
	for n, idx := 0, h.hash; n < len(c); n++ {
		if i := int(c[idx]); i >= 0 && l.available(i) && !(skipTried && h.wasTried(i)) {
			return i
		}
		if idx--; idx < 0 {
			idx = len(c) - 1
		}
	}
	return -1
}

// pickLeast takes the available address of least score; ties go round
// the addresses so equal ones share the load.
func (l *Live) pickLeast(h *Handle, skipTried bool, score func(int) float64) int {
	n := len(l.addrs)
	start := int(l.st.rr.Add(1) % uint64(max(n, 1)))
	best, bestScore := -1, math.Inf(1)
	for k := range n {
		i := (start + k) % n
		if !l.available(i) || skipTried && h.wasTried(i) {
			continue
		}
		if s := score(i); s < bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

// connScore is Kong's least-connections key: (connections+1)/weight, so
// the heaviest address goes first among idle ones.
func (l *Live) connScore(i int) float64 {
	return float64(l.addrs[i].conns.Load()+1) / float64(l.B.Addrs[i].Weight)
}

// latencyScore is Kong's latency key: the decayed EWMA of response times
// divided by the weight.
func (l *Live) latencyScore(i int) float64 {
	a := l.addrs[i]
	a.mu.Lock()
	e := decay(a.ewma, a.touched, 0, time.Now())
	a.mu.Unlock()
	return e / float64(l.B.Addrs[i].Weight)
}

// decayTime is Kong's DECAY_TIME for the latency EWMA.
const decayTime = 10 * time.Second

func decay(ewma float64, touched time.Time, rtt float64, now time.Time) float64 {
	td := max(now.Sub(touched), 0)
	w := math.Exp(-float64(td) / float64(decayTime))
	return ewma*w + rtt*(1-w)
}

// Outcome is how a try ended, for passive health checks.
type Outcome uint8

// Outcomes of a try.
const (
	Answered   Outcome = iota // the upstream answered with a status
	TCPFailure                // connecting or sending failed
	Timeout                   // the upstream did not answer in time

	connected // a TCP probe connected: a success
)

// Done ends the current try: its connection no longer counts, its
// latency feeds the latency algorithm, and its outcome (with status when
// Answered) the passive health checks.
func (l *Live) Done(h *Handle, o Outcome, status int) {
	if h.addr < 0 {
		return
	}
	a := l.addrs[h.addr]
	a.conns.Add(-1)
	if l.B.Upstream.Algorithm == Latency && o == Answered {
		now := time.Now()
		a.mu.Lock()
		a.ewma = decay(a.ewma, a.touched, now.Sub(h.start).Seconds(), now)
		a.touched = now
		a.mu.Unlock()
	}
	if l.B.checksOn {
		l.st.reportPassive(a, &l.B.Upstream.Checks.Passive, o, status)
	}
}
