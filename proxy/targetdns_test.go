package proxy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// zone is a DNS server on a loopback port whose A records can change
// while it serves; every answer has a TTL of one second.
type zone struct {
	mu      sync.Mutex
	records map[string][]string
	addr    string
}

func startZone(t *testing.T, records map[string][]string) *zone {
	t.Helper()
	z := &zone{records: records}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		z.mu.Lock()
		ips, ok := z.records[q.Question[0].Name]
		z.mu.Unlock()
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Question[0].Qtype == dns.TypeA:
			for _, ip := range ips {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA,
					Class: dns.ClassINET, Ttl: 1}, A: net.ParseIP(ip)})
			}
		}
		_ = w.WriteMsg(m)
	})}
	go srv.ActivateAndServe() //nolint:errcheck // ends at Shutdown
	t.Cleanup(func() { _ = srv.Shutdown() })
	z.addr = pc.LocalAddr().String()
	return z
}

func (z *zone) set(name string, ips ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.records[name] = ips
}

// startTargetsOnOnePort starts a target on each ip, all on one port (as
// the addresses of one name are), and returns the port.
func startTargetsOnOnePort(t *testing.T, ips ...string) int {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(first.Addr().(*net.TCPAddr).Port)
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(ips) {
			for _, ln := range lns {
				serveTarget(t, ln)
			}
			return first.Addr().(*net.TCPAddr).Port
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	t.Fatal("no port free on every address")
	return 0
}

// A target named by a host name is one balancer address per A record,
// each with the target's weight, asked again when the records' TTL ends:
// a record set that changes while traffic flows moves the traffic
// (kong/runloop/balancer/targets.lua; lua-resty-dns-client's TTL).
func TestBalancerTargetNameFollowsDNS(t *testing.T) {
	port := startTargetsOnOnePort(t, "127.0.46.1", "127.0.46.2", "127.0.46.3")
	z := startZone(t, map[string][]string{"pool.test.": {"127.0.46.1", "127.0.46.2"}})
	svc := testService(t, idA, "backend.test:80")
	snapIn := SnapshotInput{
		Services:  []entity.Service{svc},
		Routes:    []entity.Route{testRoute(idB, idA, paths("/b"))},
		Upstreams: []entity.Upstream{testUpstreamEntity("backend.test", "round-robin", "")},
		Targets:   []entity.Target{testTargetEntity(targetIDs(1), "pool.test:"+strconv.Itoa(port), 100)},
	}
	snap, warnings := NewSnapshot(snapIn)
	if len(warnings) > 0 {
		t.Fatal(warnings)
	}
	s := startProxyWith(t, snap, func(c *Config) { c.DNSResolvers = []string{z.addr} })
	served := func(want ...string) error {
		seen := map[string]int{}
		for range 40 {
			status, _, body := send(t, s, "GET", "/b", nil)
			if status != 200 {
				return fmt.Errorf("got %d %q", status, body)
			}
			host, _, _ := net.SplitHostPort(body)
			seen[host]++
		}
		for _, ip := range want {
			if seen[ip] == 0 {
				return fmt.Errorf("%s got no request (served: %v)", ip, seen)
			}
		}
		if len(seen) != len(want) {
			return fmt.Errorf("served by %v, want only %v", seen, want)
		}
		return nil
	}
	testutil.Eventually(t, 10*time.Second, func() error { return served("127.0.46.1", "127.0.46.2") })
	z.set("pool.test.", "127.0.46.3")
	testutil.Eventually(t, 10*time.Second, func() error { return served("127.0.46.3") })
}

// dns_hostsfile's names answer before DNS, IPv4 first as for DNS (Kong's
// resolver reads the hosts file too); a missing file has no names.
func TestTargetDNSHostsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	hosts := "127.0.0.1 localhost\n::1 localhost ip6-only\n10.0.0.7 app.internal # a comment\n10.0.0.8 App.Internal\n"
	if err := os.WriteFile(path, []byte(hosts), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultDNSConfig()
	cfg.HostsFile = path
	d := newTargetDNS(nil, cfg, zerolog.Nop())
	tests := []struct {
		name string
		want []string
	}{
		{"localhost", []string{"127.0.0.1"}},
		{"ip6-only", []string{"::1"}},
		{"APP.internal", []string{"10.0.0.7", "10.0.0.8"}},
	}
	for _, tt := range tests {
		var got []string
		for _, a := range d.addresses(tt.name) {
			got = append(got, a.IP)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	cfg.HostsFile = filepath.Join(t.TempDir(), "missing")
	if got := newTargetDNS(nil, cfg, zerolog.Nop()).hosts; len(got) != 0 {
		t.Errorf("a missing hosts file gave %v, want no names", got)
	}
}
