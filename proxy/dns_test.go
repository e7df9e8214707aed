package proxy

import (
	"net"
	"strings"
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/miekg/dns"
)

// startDNS serves a zone on a loopback UDP port: names in addrs answer
// their IPv4 address, "broken.test." answers SERVFAIL, the rest NXDOMAIN.
func startDNS(t *testing.T, addrs map[string]string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := q.Question[0].Name
		switch ip, ok := addrs[name]; {
		case name == "broken.test.":
			m.Rcode = dns.RcodeServerFailure
		case ok && q.Question[0].Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: net.ParseIP(ip)})
		case ok:
			// the name exists, with no record of this type
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go srv.ActivateAndServe() //nolint:errcheck // ends at Shutdown
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// Service hosts are looked up with dns_resolver's servers; a name that does
// not exist answers 503 "name resolution failed" and one the lookup fails
// for 500, as Kong's balancer does (kong/runloop/balancer/init.lua,
// kong/runloop/handler.lua balancer_execute), without retries.
func TestServiceHostResolution(t *testing.T) {
	up := newUpstream(t, nil)
	_, port, _ := net.SplitHostPort(up.addr())
	server := startDNS(t, map[string]string{"up.test.": "127.0.0.1"})
	named := func(host string) entity.Service {
		return testService(t, host, net.JoinHostPort(host, port))
	}
	snap := mustSnapshot(t, []entity.Service{named("up.test"), named("missing.test"), named("broken.test")}, []entity.Route{
		testRoute(idA, "up.test", paths("/up")),
		testRoute(idB, "missing.test", paths("/missing")),
		testRoute(idC, "broken.test", paths("/broken")),
	})
	s := startProxyWith(t, snap, func(c *Config) { c.DNSResolvers = []string{server} })
	tests := []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{"/up", 200, "ok"},
		{"/missing", 503, `"message":"name resolution failed"`},
		{"/broken", 500, `"message":"failed the initial dns/balancer resolve for 'broken.test' with: `},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			before := up.count()
			status, _, body := send(t, s, "GET", tt.path, nil)
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("got %d %q, want %d with %q", status, body, tt.wantStatus, tt.wantBody)
			}
			if tt.wantStatus != 200 && up.count() != before {
				t.Errorf("a request reached the upstream")
			}
		})
	}
}
