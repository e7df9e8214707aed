package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/proxy/balancer"
)

// Kong's balancer turns a target named by a host name into one address per
// A and AAAA record, and asks again when the records' TTL ends
// (kong/runloop/balancer/targets.lua over lua-resty-dns-client). targetDNS
// does that for the proxy: it resolves the names the balancers use in the
// background (a request never waits for DNS), keeps each answer for its
// TTL, keeps the last good answer while lookups fail (dns_stale_ttl), and
// tells the proxy when a name's addresses changed so the balancers using
// it are rebuilt.

// DNSConfig is kong.conf's dns_* keys for balancer targets; a StaleTTL
// of 0 keeps no stale answer.
type DNSConfig struct {
	Order       []uint16      // dns_order: LAST,SRV,A,CNAME (ParseDNSOrder); nil: that
	ValidTTL    time.Duration // dns_valid_ttl: replaces every record's TTL; 0: the records' own
	HostsFile   string        // dns_hostsfile: "/etc/hosts"; "" reads none
	StaleTTL    time.Duration // dns_stale_ttl: how long a failing name keeps its last addresses; 1h
	NotFoundTTL time.Duration // dns_not_found_ttl: when a name without records is asked again; 30s
	ErrorTTL    time.Duration // dns_error_ttl: when a failed lookup is tried again; 1s
}

// DefaultDNSConfig is Kong's defaults.
func DefaultDNSConfig() DNSConfig {
	return DNSConfig{HostsFile: "/etc/hosts", StaleTTL: time.Hour, NotFoundTTL: 30 * time.Second, ErrorTTL: time.Second}
}

// A TTL of 0 (a record's, or dns_not_found_ttl/dns_error_ttl) is asked
// again after minDNSTTL; one lookup waits
// dnsTimeout per name server.
const (
	minDNSTTL  = time.Second
	dnsTimeout = 2 * time.Second
)

type targetDNS struct {
	cfg      DNSConfig
	servers  []string            // name servers, "ip:port"
	hosts    map[string][]string // the hosts file's names
	onChange func()              // called, from the resolving goroutine, when addresses change
	log      zerolog.Logger

	mu    sync.Mutex // guards names
	names map[string]*dnsEntry
	wake  chan struct{}
}

// dnsEntry is what is known of one name.
type dnsEntry struct {
	addrs    []balancer.Resolved // sorted; nil until resolved
	last     uint16              // the record type that answered last (dns_order's LAST)
	due      time.Time           // when to ask again
	goodTill time.Time           // after it, a failing name's last addresses are dropped
	used     bool                // named by a balancer at the last rebuild
}

// newTargetDNS asks servers (kong.conf's dns_resolver), or else those of
// /etc/resolv.conf, after the names of /etc/hosts.
func newTargetDNS(servers []string, cfg DNSConfig, log zerolog.Logger) *targetDNS {
	if len(cfg.Order) == 0 {
		cfg.Order = defaultDNSOrder
	}
	if len(servers) == 0 {
		if conf, err := dns.ClientConfigFromFile("/etc/resolv.conf"); err == nil {
			for _, s := range conf.Servers {
				servers = append(servers, net.JoinHostPort(s, conf.Port))
			}
		}
	}
	return &targetDNS{cfg: cfg, servers: servers, hosts: readHostsFile(cfg.HostsFile), log: log,
		names: map[string]*dnsEntry{}, wake: make(chan struct{}, 1)}
}

// addresses returns the addresses known for name (nil before the first
// answer) and marks it used, asking for it in the background if new.
func (d *targetDNS) addresses(name string) []balancer.Resolved {
	if ips, ok := d.hosts[strings.ToLower(name)]; ok {
		return resolvedIPs(ips)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.names[name]
	if e == nil {
		e = &dnsEntry{}
		d.names[name] = e
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	e.used = true
	return e.addrs
}

// forgetUnused drops the names no balancer named since the last call.
func (d *targetDNS) forgetUnused() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, e := range d.names {
		if !e.used {
			delete(d.names, name)
		}
		e.used = false
	}
}

// run resolves the names that are due until ctx ends.
func (d *targetDNS) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		changed := false
		for _, name := range d.due(time.Now()) {
			changed = d.refresh(ctx, name) || changed
		}
		if changed && d.onChange != nil {
			d.onChange()
		}
		timer.Reset(d.untilNext(time.Now()))
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// due lists the names whose answer has run out.
func (d *targetDNS) due(now time.Time) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var names []string
	for name, e := range d.names {
		if !now.Before(e.due) {
			names = append(names, name)
		}
	}
	return names
}

// untilNext is the wait until the next name is due.
func (d *targetDNS) untilNext(now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := time.Hour
	for _, e := range d.names {
		next = min(next, e.due.Sub(now))
	}
	return max(next, 10*time.Millisecond)
}

// refresh asks for name again; it reports whether its addresses changed.
func (d *targetDNS) refresh(ctx context.Context, name string) bool {
	d.mu.Lock()
	var last uint16
	if e := d.names[name]; e != nil {
		last = e.last
	}
	d.mu.Unlock()
	ans, err := d.lookup(ctx, name, last)
	addrs := ans.addrs
	slices.SortFunc(addrs, balancer.Resolved.Compare)
	addrs = slices.Compact(addrs)
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.names[name]
	if e == nil {
		return false // forgotten meanwhile
	}
	switch {
	case err == nil:
		ttl := max(ans.ttl, minDNSTTL)
		if d.cfg.ValidTTL > 0 {
			ttl = d.cfg.ValidTTL
		}
		e.due, e.goodTill, e.last = now.Add(ttl), now.Add(ttl+d.cfg.StaleTTL), ans.qtype
	case errors.Is(err, errNoAddresses):
		e.due, addrs = now.Add(max(d.cfg.NotFoundTTL, minDNSTTL)), nil
	default:
		e.due = now.Add(max(d.cfg.ErrorTTL, minDNSTTL))
		if now.Before(e.goodTill) {
			addrs = e.addrs // stale, but the best there is
		}
	}
	if err != nil {
		d.log.Warn().Err(err).Str("name", name).Int("addresses_kept", len(addrs)).Msg("balancer target name did not resolve")
	}
	if slices.Equal(addrs, e.addrs) {
		return false
	}
	d.log.Info().Str("name", name).Str("type", dns.TypeToString[ans.qtype]).Str("addresses", fmt.Sprint(addrs)).
		Msg("balancer target name resolved to new addresses")
	e.addrs = addrs
	return true
}

var errNoAddresses = errors.New("no A, AAAA or SRV records")

// Record types of dns_order; typeLast stands for the type that last
// answered for the name.
const typeLast = 0

// ParseDNSOrder reads dns_order ("LAST,SRV,A,CNAME", any case) into its
// types; LAST is 0.
func ParseDNSOrder(s string) ([]uint16, error) {
	var order []uint16
	for _, f := range strings.Split(s, ",") {
		f = strings.ToUpper(strings.TrimSpace(f))
		t, ok := map[string]uint16{"LAST": typeLast, "SRV": dns.TypeSRV, "A": dns.TypeA, "AAAA": dns.TypeAAAA, "CNAME": dns.TypeCNAME}[f]
		if !ok {
			return nil, fmt.Errorf("invalid dns record type in dns_order: %q (want LAST, SRV, A, AAAA or CNAME)", f)
		}
		if !slices.Contains(order, t) {
			order = append(order, t)
		}
	}
	return order, nil
}

// defaultDNSOrder is Kong's dns_order.
var defaultDNSOrder = []uint16{typeLast, dns.TypeSRV, dns.TypeA, dns.TypeCNAME}

// dnsAnswer is what one name resolved to.
type dnsAnswer struct {
	addrs []balancer.Resolved
	ttl   time.Duration // the smallest of the records' TTLs
	qtype uint16        // the type that answered (dns_order's LAST)
}

// maxDNSDepth bounds the CNAMEs and SRV targets followed from one name.
const maxDNSDepth = 4

// lookup asks the servers for name's records of each type in dns_order
// (LAST being the type that answered last time) until one has any, as
// Kong's resolver does (kong/resty/dns/client.lua resolve): an SRV answer
// is one address per record of its lowest priority, with the record's
// port and weight, the record's target looked up for its addresses; a
// CNAME is followed. Kong's default order asks A and never AAAA; here a
// name without A records is asked AAAA when the order does not list it,
// so an IPv6-only name is served all the same.
func (d *targetDNS) lookup(ctx context.Context, name string, last uint16) (dnsAnswer, error) {
	if len(d.servers) == 0 {
		return dnsAnswer{}, errors.New("no name server configured (dns_resolver, /etc/resolv.conf)")
	}
	var types []uint16
	for _, t := range d.cfg.Order {
		if t == typeLast {
			t = last
		}
		if t != typeLast && !slices.Contains(types, t) {
			types = append(types, t)
		}
		if t == dns.TypeA && !slices.Contains(d.cfg.Order, dns.TypeAAAA) && !slices.Contains(types, dns.TypeAAAA) {
			types = append(types, dns.TypeAAAA)
		}
	}
	return d.resolveTypes(ctx, name, types, 0)
}

// resolveTypes asks for name's records of each of types in turn until
// one has any; a failure is returned only when no type answered.
func (d *targetDNS) resolveTypes(ctx context.Context, name string, types []uint16, depth int) (dnsAnswer, error) {
	if ips, ok := d.hosts[strings.ToLower(name)]; ok && depth > 0 {
		return dnsAnswer{addrs: resolvedIPs(ips), ttl: -1, qtype: dns.TypeA}, nil
	}
	var errs []error
	for _, qtype := range types {
		ans, err := d.ask(ctx, name, qtype, depth)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(ans.addrs) > 0 {
			ans.qtype = qtype
			return ans, nil
		}
	}
	if len(errs) > 0 {
		return dnsAnswer{}, errors.Join(errs...)
	}
	return dnsAnswer{}, errNoAddresses
}

// ask asks for name's records of one type; a name without them is an
// empty answer.
func (d *targetDNS) ask(ctx context.Context, name string, qtype uint16, depth int) (dnsAnswer, error) {
	answer, err := d.exchange(ctx, dns.Fqdn(name), qtype)
	if err != nil {
		return dnsAnswer{}, err
	}
	switch answer.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return dnsAnswer{}, nil
	default:
		return dnsAnswer{}, fmt.Errorf("name server answered %s for %s %s", dns.RcodeToString[answer.Rcode], dns.TypeToString[qtype], name)
	}
	var out dnsAnswer
	out.ttl = -1
	keep := func(ttl uint32) {
		if t := time.Duration(ttl) * time.Second; out.ttl < 0 || t < out.ttl {
			out.ttl = t
		}
	}
	var srvs []*dns.SRV
	for _, rr := range answer.Answer {
		switch r := rr.(type) {
		case *dns.A:
			if qtype == dns.TypeA {
				out.addrs = append(out.addrs, balancer.Resolved{IP: r.A.String()})
				keep(r.Hdr.Ttl)
			}
		case *dns.AAAA:
			if qtype == dns.TypeAAAA {
				out.addrs = append(out.addrs, balancer.Resolved{IP: r.AAAA.String()})
				keep(r.Hdr.Ttl)
			}
		case *dns.SRV:
			if qtype == dns.TypeSRV {
				srvs = append(srvs, r)
				keep(r.Hdr.Ttl)
			}
		case *dns.CNAME:
			if qtype == dns.TypeCNAME && depth < maxDNSDepth {
				keep(r.Hdr.Ttl)
				return d.follow(ctx, strings.TrimSuffix(r.Target, "."), []uint16{dns.TypeSRV, dns.TypeA, dns.TypeAAAA}, depth, out.ttl)
			}
		}
	}
	if len(srvs) > 0 {
		return d.srvAddresses(ctx, srvs, depth, out.ttl)
	}
	return out, nil
}

// srvAddresses turns SRV records into addresses: only those of the lowest
// priority, as Kong uses; each record's target is looked up (an IP is
// itself) and each of its addresses gets the record's port and weight,
// a weight of 0 being 1 (Kong's SRV_0_WEIGHT).
func (d *targetDNS) srvAddresses(ctx context.Context, srvs []*dns.SRV, depth int, ttl time.Duration) (dnsAnswer, error) {
	top := slices.MinFunc(srvs, func(a, b *dns.SRV) int { return int(a.Priority) - int(b.Priority) }).Priority
	out := dnsAnswer{ttl: ttl}
	var errs []error
	for _, r := range srvs {
		if r.Priority != top {
			continue
		}
		target := strings.TrimSuffix(r.Target, ".")
		weight := max(int(r.Weight), 1)
		if ip := net.ParseIP(target); ip != nil {
			out.addrs = append(out.addrs, balancer.Resolved{IP: ip.String(), Port: int(r.Port), Weight: weight})
			continue
		}
		if depth >= maxDNSDepth {
			continue
		}
		ans, err := d.resolveTypes(ctx, target, []uint16{dns.TypeA, dns.TypeAAAA}, depth+1)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.ttl = minTTL(out.ttl, ans.ttl)
		for _, a := range ans.addrs {
			out.addrs = append(out.addrs, balancer.Resolved{IP: a.IP, Port: int(r.Port), Weight: weight, Name: target})
		}
	}
	if len(out.addrs) == 0 && len(errs) > 0 {
		return dnsAnswer{}, errors.Join(errs...)
	}
	return out, nil
}

// follow resolves a CNAME's target; the TTL is the smaller of both.
func (d *targetDNS) follow(ctx context.Context, target string, types []uint16, depth int, ttl time.Duration) (dnsAnswer, error) {
	ans, err := d.resolveTypes(ctx, target, types, depth+1)
	ans.ttl = minTTL(ans.ttl, ttl)
	return ans, err
}

// minTTL is the smaller of two TTLs, a negative one being none (a hosts
// file's answer has no TTL: 0).
func minTTL(a, b time.Duration) time.Duration {
	switch {
	case a < 0:
		return b
	case b < 0:
		return a
	}
	return min(a, b)
}

func resolvedIPs(ips []string) []balancer.Resolved {
	out := make([]balancer.Resolved, len(ips))
	for i, ip := range ips {
		out[i] = balancer.Resolved{IP: ip}
	}
	return out
}

// exchange sends one question to the servers in turn, over TCP when the
// UDP answer was truncated.
func (d *targetDNS) exchange(ctx context.Context, fqdn string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(fqdn, qtype)
	var errs []error
	for _, server := range d.servers {
		ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
		answer, _, err := (&dns.Client{}).ExchangeContext(ctx, q, server)
		if err == nil && answer.Truncated {
			answer, _, err = (&dns.Client{Net: "tcp"}).ExchangeContext(ctx, q, server)
		}
		cancel()
		if err == nil {
			return answer, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// readHostsFile reads the names of a hosts file, lower case, with their
// addresses; a missing file has none.
func readHostsFile(path string) map[string][]string {
	out := map[string][]string{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 || net.ParseIP(fields[0]) == nil {
			continue
		}
		ip := net.ParseIP(fields[0]).String()
		for _, name := range fields[1:] {
			name = strings.ToLower(name)
			if !slices.Contains(out[name], ip) {
				out[name] = append(out[name], ip)
			}
		}
	}
	// IPv4 first, as for DNS: a name with an IPv4 address ("localhost")
	// does not get its IPv6 one too.
	for name, ips := range out {
		if v4 := slices.DeleteFunc(slices.Clone(ips), func(ip string) bool { return net.ParseIP(ip).To4() == nil }); len(v4) > 0 {
			out[name] = v4
		}
		slices.Sort(out[name])
	}
	return out
}
