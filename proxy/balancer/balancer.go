package balancer

import (
	"cmp"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
)

// Kong's balancer errors (balancers.lua): the proxy answers both with 503
// "failure to get a peer from the ring-balancer" (runloop/balancer/init.lua).
var (
	ErrNoPeers   = errors.New("No peers are available")
	ErrUnhealthy = errors.New("Balancer is unhealthy")
)

// Address is one entry of a balancer: an address of a target with its
// weight. A target whose host is an IP address has one; a target named by
// a host name has one per DNS record once resolved (until then, one with
// the name itself, looked up when dialled).
type Address struct {
	TargetID   string
	Target     string // the target as stored ("host:port")
	Hostname   string // the target's host
	TargetPort int    // the target's port; Port differs for an SRV record's address
	SRV        bool   // the address came from an SRV record
	IP         string
	Port       int
	Weight     int
	Dial       string // IP:port
	key        string // identity of the address's state across rebuilds

	hostHTTP, hostHTTPS []byte // Host sent upstream for each scheme
}

// HostHeader is the Host Kong sends to this address (set_host_header):
// the upstream's host_header or the target's host name, with the port
// unless it is the scheme's default.
func (a *Address) HostHeader(https bool) []byte {
	if https {
		return a.hostHTTPS
	}
	return a.hostHTTP
}

func hostHeader(host string, port, defaultPort int) []byte {
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		host = "[" + host + "]"
	}
	if port == defaultPort {
		return []byte(host)
	}
	return []byte(host + ":" + strconv.Itoa(port))
}

// Balancer is the compiled, immutable balancer of one upstream: its
// addresses and the algorithm's structure. The state that changes with
// traffic lives in a Live, bound to the upstream's State.
type Balancer struct {
	Upstream Upstream
	Targets  []Target
	Addrs    []Address

	totalWeight int
	checksOn    bool    // Upstream.Checks.Enabled()
	wheel       []int32 // round-robin: address indexes by points, shuffled
	continuum   []int32 // consistent-hashing: address index per point, -1 empty
}

// serverPoints is Kong's SERVER_POINTS: continuum points per target when
// all weigh the same.
const serverPoints = 160

// minContinuum is Kong's MIN_CONTINUUM_SIZE (and its default): slots below
// it give a continuum of this size.
const minContinuum = 1000

// maxWheel caps the round-robin wheel; weights reduced by their GCD rarely
// come near it.
const maxWheel = 1 << 20

// New compiles the balancer of u over targets. Targets of weight 0 are
// kept (they are listed with their health) but never picked.
func New(u Upstream, targets []Target) *Balancer {
	return NewResolved(u, targets, nil)
}

// Resolved is one address DNS gave for a target's host name: an IP of an
// A or AAAA record (Port and Weight 0: the target's), or of an SRV
// record's target, with the record's port and weight.
type Resolved struct {
	IP     string
	Port   int    // an SRV record's port; 0: the target's
	Weight int    // an SRV record's weight (its 0 given as 1, as Kong does); 0: the target's
	Name   string // an SRV record's target name ("" for an IP): the Host with use_srv_name
}

// Compare orders addresses by IP, port and name.
func (r Resolved) Compare(o Resolved) int {
	return cmp.Or(cmp.Compare(r.IP, o.IP), cmp.Compare(r.Port, o.Port), cmp.Compare(r.Name, o.Name))
}

// NewResolved is New with the addresses DNS gave for targets named by a
// host name: one address per entry of ips[host]. An A/AAAA record's
// address has the target's port and weight, as Kong's balancer gives each
// record its target's weight; an SRV record's has the record's port and
// weight, the target's port ignored (kong/runloop/balancer/targets.lua,
// balancers.lua addAddress). A target of weight 0 stays disabled. A name
// without addresses in ips stays one address, dialled by name.
func NewResolved(u Upstream, targets []Target, ips map[string][]Resolved) *Balancer {
	b := &Balancer{Upstream: u, Targets: slices.Clone(targets), checksOn: u.Checks.Enabled()}
	// Kong sorts hosts and addresses before building the continuum, so
	// every node builds the same one whatever order targets arrived in.
	slices.SortFunc(b.Targets, func(x, y Target) int {
		return cmp.Or(cmp.Compare(x.Host, y.Host), cmp.Compare(x.Port, y.Port), cmp.Compare(x.ID, y.ID))
	})
	for _, t := range b.Targets {
		resolved := slices.SortedFunc(slices.Values(ips[t.Host]), Resolved.Compare)
		if len(resolved) == 0 {
			resolved = []Resolved{{IP: t.Host}}
		}
		for _, r := range resolved {
			a := newAddress(u, t, r)
			b.Addrs = append(b.Addrs, a)
			b.totalWeight += a.Weight
		}
	}
	switch u.Algorithm {
	case RoundRobin:
		b.wheel = buildWheel(b.Addrs)
	case ConsistentHashing:
		b.continuum = buildContinuum(b.Addrs, len(b.Addrs), u.Slots)
	}
	return b
}

func newAddress(u Upstream, t Target, r Resolved) Address {
	port, weight := t.Port, t.Weight
	if r.Port != 0 {
		port = r.Port
	}
	if r.Weight != 0 && weight != 0 {
		weight = r.Weight
	}
	dial := net.JoinHostPort(r.IP, strconv.Itoa(port))
	// Kong's setHostHeader: the target's name, or with use_srv_name the
	// SRV record's target name; the upstream's host_header above both.
	host := t.Host
	if u.UseSRVName && r.Name != "" {
		host = r.Name
	}
	if u.HostHeader != "" {
		host = u.HostHeader
	}
	return Address{
		TargetID: t.ID, Target: t.Target, Hostname: t.Host, TargetPort: t.Port, SRV: r.Port != 0,
		IP: r.IP, Port: port, Weight: weight, Dial: dial, key: t.Host + "|" + dial,
		hostHTTP: hostHeader(host, port, 80), hostHTTPS: hostHeader(host, port, 443),
	}
}

// buildWheel is Kong's round-robin wheel: each address as many times as
// its weight divided by the weights' GCD, shuffled.
func buildWheel(addrs []Address) []int32 {
	divisor, total := 0, 0
	for _, a := range addrs {
		divisor = gcd(divisor, a.Weight)
		total += a.Weight
	}
	if total == 0 {
		return nil
	}
	for total/divisor > maxWheel {
		divisor *= 2 // keeps the proportions within a point per address
	}
	var wheel []int32
	for i, a := range addrs {
		points := a.Weight / divisor
		if a.Weight > 0 && points == 0 {
			points = 1
		}
		for range points {
			wheel = append(wheel, int32(i))
		}
	}
	rand.Shuffle(len(wheel), func(i, j int) { wheel[i], wheel[j] = wheel[j], wheel[i] })
	return wheel
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// buildContinuum is Kong's Ketama-style continuum: each address gets
// points in proportion to its weight (160 per target at equal weights),
// each at the hash of "ip:port i"; a collision moves on to the next i.
// Only the removed address's points change when one goes, so only the
// keys that hashed to it move.
func buildContinuum(addrs []Address, targets, slots int) []int32 {
	points := max(slots, minContinuum)
	c := make([]int32, points)
	for i := range c {
		c[i] = -1
	}
	total := 0
	for _, a := range addrs {
		total += a.Weight
	}
	if total == 0 {
		return c
	}
	for i, a := range addrs {
		entries := a.Weight * targets * serverPoints / total
		if a.Weight > 0 && entries == 0 {
			entries = 1
		}
		for n, placed := 1, 0; placed < entries && n <= 4*points; n++ {
			idx := hashIndex([]byte(a.Dial+" "+strconv.Itoa(n)), points)
			if c[idx] == -1 {
				c[idx] = int32(i)
				placed++
			}
		}
	}
	return c
}

// hashIndex maps a value to a point of a continuum of size points.
func hashIndex(v []byte, points int) int {
	return int(mix64(fnv64a(v)) % uint64(points))
}

// fnv64a is FNV-1a, inline so hashing a request's key allocates nothing.
func fnv64a(v []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range v {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// mix64 is MurmurHash3's finaliser: FNV's low bits alone spread short,
// similar strings unevenly.
func mix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// HostNames lists the hosts of b's targets that are names, not addresses:
// what DNS resolves into addresses (NewResolved).
func (b *Balancer) HostNames() []string {
	var names []string
	for _, t := range b.Targets {
		if net.ParseIP(t.Host) == nil && !slices.Contains(names, t.Host) {
			names = append(names, t.Host)
		}
	}
	return names
}
