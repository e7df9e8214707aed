package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// srvZone is a DNS server on a loopback port with A, SRV and CNAME
// records that can change while it serves; every answer has a TTL of one
// second. A name it does not know is NXDOMAIN; a known name asked for a
// type it lacks is an empty answer.
type srvZone struct {
	mu    sync.Mutex
	a     map[string][]string
	srv   map[string][]*dns.SRV
	cname map[string]string
	asked map[uint16]int // questions by type
	addr  string
}

func startSRVZone(t *testing.T) *srvZone {
	t.Helper()
	z := &srvZone{a: map[string][]string{}, srv: map[string][]*dns.SRV{}, cname: map[string]string{}, asked: map[uint16]int{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(z.serve)}
	go srv.ActivateAndServe() //nolint:errcheck // ends at Shutdown
	t.Cleanup(func() { _ = srv.Shutdown() })
	z.addr = pc.LocalAddr().String()
	return z
}

func (z *srvZone) serve(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	name, qtype := q.Question[0].Name, q.Question[0].Qtype
	hdr := dns.RR_Header{Name: name, Rrtype: qtype, Class: dns.ClassINET, Ttl: 1}
	z.mu.Lock()
	z.asked[qtype]++
	ips, isA := z.a[name]
	srvs, isSRV := z.srv[name]
	target, isCNAME := z.cname[name]
	switch {
	case !isA && !isSRV && !isCNAME:
		m.Rcode = dns.RcodeNameError
	case qtype == dns.TypeA && isA:
		for _, ip := range ips {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP(ip)})
		}
	case qtype == dns.TypeSRV && isSRV:
		for _, r := range srvs {
			r := *r
			r.Hdr = hdr
			m.Answer = append(m.Answer, &r)
		}
	case qtype == dns.TypeCNAME && isCNAME:
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: hdr, Target: target})
	}
	z.mu.Unlock()
	_ = w.WriteMsg(m)
}

func (z *srvZone) setA(name string, ips ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.a[name] = ips
}

func (z *srvZone) setSRV(name string, records ...*dns.SRV) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.srv[name] = records
}

func (z *srvZone) questions(qtype uint16) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.asked[qtype]
}

func srvRecord(priority, weight uint16, target string, port int) *dns.SRV {
	return &dns.SRV{Priority: priority, Weight: weight, Port: uint16(port), Target: target}
}

func portOf(t *testing.T, tg *target) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(tg.addr())
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// srvProxy serves /b through the upstream "backend.test" with one target
// (an SRV answer's ports replace its port), resolving through z.
func srvProxy(t *testing.T, z *srvZone, target string, configure func(*Config), opts ...func(*entity.Upstream)) *Server {
	t.Helper()
	snap, warnings := NewSnapshot(SnapshotInput{
		Services:  []entity.Service{testService(t, idA, "backend.test:80")},
		Routes:    []entity.Route{testRoute(idB, idA, paths("/b"))},
		Upstreams: []entity.Upstream{testUpstreamEntity("backend.test", "round-robin", "", opts...)},
		Targets:   []entity.Target{testTargetEntity(targetIDs(1), target, 100)},
	})
	if len(warnings) > 0 {
		t.Fatal(warnings)
	}
	return startProxyWith(t, snap, func(c *Config) {
		c.DNSResolvers = []string{z.addr}
		if configure != nil {
			configure(c)
		}
	})
}

// servedBy sends n requests and counts them by the target that answered.
func servedBy(t *testing.T, s *Server, n int) (map[string]int, error) {
	seen := map[string]int{}
	for range n {
		status, _, body := send(t, s, "GET", "/b", nil)
		if status != 200 {
			return seen, fmt.Errorf("got %d %q", status, body)
		}
		seen[body]++
	}
	return seen, nil
}

// A target named by an SRV name is one balancer address per SRV record
// of the lowest priority, dialled at the record's port (the target's is
// ignored) with the record's weight; the record's target name is looked
// up for its address. When the record set changes while traffic flows,
// the traffic follows it without a failed request. Reference:
// kong/runloop/balancer/targets.lua (update_dns_result: only the top
// priority; SRV weight 0 counts 1), balancers.lua addAddress (the
// record's port and weight), kong/resty/dns/client.lua (dns_order
// LAST,SRV,A,CNAME: SRV asked first).
func TestBalancerTargetSRV(t *testing.T) {
	a, b, c := startTarget(t, "127.0.43.1"), startTarget(t, "127.0.43.2"), startTarget(t, "127.0.43.3")
	backup := startTarget(t, "127.0.43.4")
	z := startSRVZone(t)
	for name, tg := range map[string]*target{"a.test.": a, "b.test.": b, "c.test.": c, "backup.test.": backup} {
		host, _, _ := net.SplitHostPort(tg.addr())
		z.setA(name, host)
	}
	z.setSRV("svc.test.",
		srvRecord(10, 10, "a.test.", portOf(t, a)),
		srvRecord(10, 30, "b.test.", portOf(t, b)),
		srvRecord(20, 100, "backup.test.", portOf(t, backup)))
	s := srvProxy(t, z, "svc.test:9", nil)

	// 40 requests go round a 1:3 wheel ten times.
	testutil.Eventually(t, 10*time.Second, func() error {
		seen, err := servedBy(t, s, 40)
		if err != nil {
			return err
		}
		if want := map[string]int{a.addr(): 10, b.addr(): 30}; !mapsEqual(seen, want) {
			return fmt.Errorf("served %v, want %v", seen, want)
		}
		return nil
	})
	if got, want := b.host.Load(), "svc.test:"+strconv.Itoa(portOf(t, b)); got != want {
		t.Errorf("Host sent: got %v, want %q (the target's name, the record's port)", got, want)
	}

	// The record set changes under steady traffic: b goes, c (weight 0,
	// counted as 1) comes; no request fails on the way.
	stop, failures := make(chan struct{}), make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if status, _, body := send(t, s, "GET", "/b", nil); status != 200 {
				select {
				case failures <- fmt.Errorf("got %d %q while the records changed", status, body):
				default:
				}
			}
		}
	}()
	z.setSRV("svc.test.",
		srvRecord(10, 10, "a.test.", portOf(t, a)),
		srvRecord(10, 0, "c.test.", portOf(t, c)))
	testutil.Eventually(t, 10*time.Second, func() error {
		seen, err := servedBy(t, s, 22)
		if err != nil {
			return err
		}
		if want := map[string]int{a.addr(): 20, c.addr(): 2}; !mapsEqual(seen, want) {
			return fmt.Errorf("served %v, want %v", seen, want)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	select {
	case err := <-failures:
		t.Error(err)
	default:
	}
}

func mapsEqual(x, y map[string]int) bool {
	if len(x) != len(y) {
		return false
	}
	for k, v := range x {
		if y[k] != v {
			return false
		}
	}
	return true
}

// With use_srv_name the Host sent is the SRV record's target name
// (balancers.lua setHostHeader).
func TestBalancerTargetSRVUseSRVName(t *testing.T) {
	a := startTarget(t, "127.0.43.5")
	z := startSRVZone(t)
	z.setA("a.test.", "127.0.43.5")
	z.setSRV("svc.test.", srvRecord(1, 1, "a.test.", portOf(t, a)))
	s := srvProxy(t, z, "svc.test:9", nil, func(u *entity.Upstream) { u.UseSRVName = true })
	// Until the first answer the target is dialled by name (its SRV
	// record found at the dial, the Host the target's): wait for the
	// balancer's own addresses.
	testutil.Eventually(t, 10*time.Second, func() error {
		if status, _, body := send(t, s, "GET", "/b", nil); status != 200 || body != a.addr() {
			return fmt.Errorf("got %d %q, want 200 from %s", status, body, a.addr())
		}
		if got, want := a.host.Load(), "a.test:"+strconv.Itoa(portOf(t, a)); got != want {
			return fmt.Errorf("Host sent: got %v, want %q", got, want)
		}
		return nil
	})
}

// dns_order decides which record types are asked, in turn: with "A"
// alone an SRV name's records are never asked for and its A record (at
// the target's own port) serves; with LAST first, a refresh asks the type
// that answered before and no other, so a plain name is not asked for SRV
// records again. dns_valid_ttl replaces the records' TTL of one second.
// Reference: kong.conf.default (dns_order, dns_valid_ttl),
// kong/resty/dns/client.lua (the LAST type cache).
func TestTargetDNSOrderAndValidTTL(t *testing.T) {
	plain, srvTarget := startTarget(t, "127.0.43.6"), startTarget(t, "127.0.43.7")
	tests := []struct {
		name     string
		order    string
		validTTL time.Duration
		host     string
		want     string
		wantSRV  bool // SRV questions asked after the first answer
	}{
		{"A only", "A", 0, "svc.test", plain.addr(), false},
		{"SRV first", "SRV,A", 0, "svc.test", srvTarget.addr(), true},
		{"plain name without LAST", "SRV,A", 0, "plain.test", plain.addr(), true},
		{"plain name with LAST", "LAST,SRV,A", 0, "plain.test", plain.addr(), false},
		{"valid ttl", "SRV,A", time.Hour, "svc.test", srvTarget.addr(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			z := startSRVZone(t)
			z.setA("svc.test.", "127.0.43.6")
			z.setA("plain.test.", "127.0.43.6")
			z.setA("s.test.", "127.0.43.7")
			z.setSRV("svc.test.", srvRecord(1, 1, "s.test.", portOf(t, srvTarget)))
			order, err := ParseDNSOrder(tt.order)
			if err != nil {
				t.Fatal(err)
			}
			s := srvProxy(t, z, tt.host+":"+strconv.Itoa(portOf(t, plain)), func(c *Config) {
				c.DNS.Order, c.DNS.ValidTTL = order, tt.validTTL
			})
			testutil.Eventually(t, 10*time.Second, func() error {
				if status, _, body := send(t, s, "GET", "/b", nil); status != 200 || body != tt.want {
					return fmt.Errorf("got %d %q, want 200 from %s", status, body, tt.want)
				}
				return nil
			})
			before := z.questions(dns.TypeSRV)
			time.Sleep(2500 * time.Millisecond) // two of the records' TTLs: refreshes are due
			if asked := z.questions(dns.TypeSRV) > before; asked != tt.wantSRV {
				t.Errorf("SRV asked again: got %v, want %v", asked, tt.wantSRV)
			}
		})
	}
}

func TestParseDNSOrder(t *testing.T) {
	tests := []struct {
		in      string
		want    []uint16
		wantErr bool
	}{
		{"LAST,SRV,A,CNAME", []uint16{typeLast, dns.TypeSRV, dns.TypeA, dns.TypeCNAME}, false},
		{"a, aaaa", []uint16{dns.TypeA, dns.TypeAAAA}, false},
		{"A,MX", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDNSOrder(tt.in)
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("got %v, %v; want %v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// closingTarget answers with its address and closes each connection, so
// every request through the proxy dials anew.
func closingTarget(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, ln.Addr().String())
	})}
	go srv.Serve(ln) //nolint:errcheck // ends at Close
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// A service's host that is an SRV name (no upstream of that name) is
// dialled at one of its records of the lowest priority, picked by weight,
// at the record's port, the service's own port ignored; a new connection
// after the records changed follows them (Kong's toip over
// kong/resty/dns/client.lua with dns_order LAST,SRV,A,CNAME).
func TestServiceHostSRV(t *testing.T) {
	a, b := closingTarget(t, "127.0.43.8"), closingTarget(t, "127.0.43.9")
	portA, _ := strconv.Atoi(a[strings.LastIndexByte(a, ':')+1:])
	portB, _ := strconv.Atoi(b[strings.LastIndexByte(b, ':')+1:])
	z := startSRVZone(t)
	z.setA("a.test.", "127.0.43.8")
	z.setA("b.test.", "127.0.43.9")
	z.setSRV("svc.test.", srvRecord(1, 10, "a.test.", portA), srvRecord(2, 10, "b.test.", portB))
	snap := mustSnapshot(t, []entity.Service{testService(t, idA, "svc.test:9")},
		[]entity.Route{testRoute(idB, idA, paths("/s"))})
	s := startProxyWith(t, snap, func(c *Config) { c.DNSResolvers = []string{z.addr} })
	answeredBy := func(want string) error {
		for range 5 {
			if status, _, body := send(t, s, "GET", "/s", nil); status != 200 || body != want {
				return fmt.Errorf("got %d %q, want 200 from %s", status, body, want)
			}
		}
		return nil
	}
	if err := answeredBy(a); err != nil {
		t.Fatal(err)
	}
	z.setSRV("svc.test.", srvRecord(1, 10, "b.test.", portB))
	if err := answeredBy(b); err != nil {
		t.Fatal(err)
	}
}
