package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"
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
	ips      []string  // the addresses, sorted; nil until resolved
	due      time.Time // when to ask again
	goodTill time.Time // after it, a failing name's last addresses are dropped
	used     bool      // named by a balancer at the last rebuild
}

// newTargetDNS asks servers (kong.conf's dns_resolver), or else those of
// /etc/resolv.conf, after the names of /etc/hosts.
func newTargetDNS(servers []string, cfg DNSConfig, log zerolog.Logger) *targetDNS {
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
func (d *targetDNS) addresses(name string) []string {
	if ips, ok := d.hosts[strings.ToLower(name)]; ok {
		return ips
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
	return e.ips
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
	ips, ttl, err := d.lookup(ctx, name)
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.names[name]
	if e == nil {
		return false // forgotten meanwhile
	}
	switch {
	case err == nil:
		e.due, e.goodTill = now.Add(max(ttl, minDNSTTL)), now.Add(max(ttl, minDNSTTL)+d.cfg.StaleTTL)
	case errors.Is(err, errNoAddresses):
		e.due, ips = now.Add(max(d.cfg.NotFoundTTL, minDNSTTL)), nil
	default:
		e.due = now.Add(max(d.cfg.ErrorTTL, minDNSTTL))
		if now.Before(e.goodTill) {
			ips = e.ips // stale, but the best there is
		}
	}
	if err != nil {
		d.log.Warn().Err(err).Str("name", name).Int("addresses_kept", len(ips)).Msg("balancer target name did not resolve")
	}
	if slices.Equal(ips, e.ips) {
		return false
	}
	d.log.Info().Str("name", name).Strs("addresses", ips).Msg("balancer target name resolved to new addresses")
	e.ips = ips
	return true
}

var errNoAddresses = errors.New("no A or AAAA records")

// lookup asks the servers in turn for name's A records, and for its AAAA
// records when it has none (Kong's default dns_order asks for A records
// and never AAAA; an IPv6-only name is served here all the same); ttl is
// the smallest of the records' TTLs.
func (d *targetDNS) lookup(ctx context.Context, name string) (ips []string, ttl time.Duration, err error) {
	if len(d.servers) == 0 {
		return nil, 0, errors.New("no name server configured (dns_resolver, /etc/resolv.conf)")
	}
	fqdn := dns.Fqdn(name)
	ttl = -1
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		if len(ips) > 0 {
			break
		}
		answer, err := d.exchange(ctx, fqdn, qtype)
		if err != nil {
			return nil, 0, err
		}
		if answer.Rcode == dns.RcodeNameError {
			continue
		}
		if answer.Rcode != dns.RcodeSuccess {
			return nil, 0, errors.New("name server answered " + dns.RcodeToString[answer.Rcode])
		}
		for _, rr := range answer.Answer {
			var ip net.IP
			switch r := rr.(type) {
			case *dns.A:
				ip = r.A
			case *dns.AAAA:
				ip = r.AAAA
			default:
				continue // a CNAME on the way
			}
			ips = append(ips, ip.String())
			if t := time.Duration(rr.Header().Ttl) * time.Second; ttl < 0 || t < ttl {
				ttl = t
			}
		}
	}
	if len(ips) == 0 {
		return nil, 0, errNoAddresses
	}
	slices.Sort(ips)
	return slices.Compact(ips), ttl, nil
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
