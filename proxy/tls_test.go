package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// tlsListens is a proxy_listen of one plain and one ssl listener.
const tlsListens = "127.0.0.1:0, 127.0.0.1:0 ssl"

// tlsAddr is the address of the proxy's first ssl listener.
func tlsAddr(t testing.TB, s *Server) string {
	t.Helper()
	for _, a := range s.Addrs() {
		if a.TLS {
			return a.Addr.String()
		}
	}
	t.Fatalf("the proxy has no ssl listener")
	return ""
}

// certEntity is a certificate entity of c.
func certEntity(id string, c *testutil.Cert) entity.Certificate {
	return entity.Certificate{ID: id, Cert: c.CertPEM, Key: c.KeyPEM}
}

func sniEntity(id, name, certID string) entity.SNI {
	return entity.SNI{ID: id, Name: name, Certificate: &entity.ForeignKey{ID: certID}}
}

// servedLeaf handshakes with addr for serverName and returns the leaf
// certificate the proxy presented.
func servedLeaf(t testing.TB, addr, serverName string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: serverName, InsecureSkipVerify: true}) //nolint:gosec // the test reads what is served
	if err != nil {
		t.Fatalf("handshake for %q: %v", serverName, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// TestSNICertificateSelection follows Kong's lookup order
// (kong/runloop/certificate.lua find_certificate, produce_wild_snis): the
// exact SNI, then "*.rest" for a name of three labels or more, then
// "first.*", then the SNI "*", then the default certificate (ssl_cert).
func TestSNICertificateSelection(t *testing.T) {
	exact := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"exact.example.com"}})
	prefix := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"*.example.com"}})
	suffix := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"suffix.example.org"}})
	star := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"star"}})
	def := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"default"}})
	defPair, err := tls.X509KeyPair([]byte(def.CertPEM), []byte(def.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	in := SnapshotInput{
		Certificates: []entity.Certificate{certEntity("c1", exact), certEntity("c2", prefix), certEntity("c3", suffix), certEntity("c4", star)},
		SNIs: []entity.SNI{sniEntity("n1", "exact.example.com", "c1"), sniEntity("n2", "*.example.com", "c2"),
			sniEntity("n3", "suffix.example.*", "c3")},
	}
	snap, warnings := NewSnapshot(in)
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	s := startProxyWith(t, snap, func(c *Config) { c.Listen = tlsListens; c.Certificates = []tls.Certificate{defPair} })
	addr := tlsAddr(t, s)

	tests := []struct {
		name, serverName string
		want             *testutil.Cert
	}{
		{"exact name", "exact.example.com", exact},
		{"exact name in another case", "EXACT.Example.com", exact},
		{"leftmost wildcard", "other.example.com", prefix},
		{"rightmost wildcard", "suffix.example.org", suffix},
		{"two labels do not match *.example.com", "example.com", def},
		{"no SNI entity: the default certificate", "unknown.test", def},
		{"no server name: the default certificate", "", def},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := servedLeaf(t, addr, tt.serverName); !got.Equal(tt.want.Cert) {
				t.Fatalf("got the certificate for %v, want the one for %v", got.DNSNames, tt.want.Cert.DNSNames)
			}
		})
	}

	// The SNI "*" stands for every name no other SNI names, before the
	// default certificate.
	in.SNIs = append(in.SNIs, sniEntity("n4", "*", "c4"))
	snap, _ = NewSnapshot(in)
	s.Swap(snap)
	if got := servedLeaf(t, addr, "unknown.test"); !got.Equal(star.Cert) {
		t.Fatalf("with SNI \"*\": got the certificate for %v, want the one for %v", got.DNSNames, star.Cert.DNSNames)
	}
}

// TestTLSGeneratedDefaultAndPolicy: without ssl_cert the proxy serves a
// certificate it generated (Kong generates kong-default.crt); Kong's
// default policy, "intermediate", refuses TLS 1.1 and serves 1.2 and 1.3.
func TestTLSGeneratedDefaultAndPolicy(t *testing.T) {
	s := startProxyWith(t, EmptySnapshot(), func(c *Config) { c.Listen = tlsListens })
	addr := tlsAddr(t, s)
	if got := servedLeaf(t, addr, "any.test"); got.Subject.CommonName != "localhost" {
		t.Errorf("got a default certificate for %q, want the generated one for localhost", got.Subject.CommonName)
	}
	tests := []struct {
		name    string
		version uint16
		ok      bool
	}{
		{"TLS 1.1 refused", tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tt.version, MaxVersion: tt.version}) //nolint:gosec // the test checks versions
			if err == nil {
				conn.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("got error %v, want success %v", err, tt.ok)
			}
		})
	}
}

// tlsClient is an HTTP client that trusts the proxy's certificates
// without checking them and keeps one connection alive.
func tlsClient(serverName string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{ServerName: serverName, InsecureSkipVerify: true}, //nolint:gosec // test certificates
		MaxIdleConnsPerHost: 1,
	}}
}

// TestTLSListenersForwardScheme: one route serves the plain and the ssl
// listener; the upstream learns the real scheme and the port the request
// arrived on (Kong's X-Forwarded-Proto and X-Forwarded-Port).
func TestTLSListenersForwardScheme(t *testing.T) {
	up := newUpstream(t, nil)
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute(idA, "s1", paths("/"))})
	s := startProxyWith(t, snap, func(c *Config) { c.Listen = tlsListens })
	for _, a := range s.Addrs() {
		scheme := map[bool]string{false: "http", true: "https"}[a.TLS]
		t.Run(scheme, func(t *testing.T) {
			resp, err := tlsClient("a.test").Get(scheme + "://" + a.Addr.String() + "/x")
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			resp.Body.Close()
			_, port, _ := net.SplitHostPort(a.Addr.String())
			got := up.last(t).Header
			if resp.StatusCode != 200 || got.Get("X-Forwarded-Proto") != scheme || got.Get("X-Forwarded-Port") != port {
				t.Fatalf("got %d, X-Forwarded-Proto %q, X-Forwarded-Port %q; want 200, %q, %q",
					resp.StatusCode, got.Get("X-Forwarded-Proto"), got.Get("X-Forwarded-Port"), scheme, port)
			}
		})
	}
}

// TestCertificateRotationWhileServing swaps a certificate's SNI to a new
// certificate while clients keep sending over kept-alive TLS connections:
// no request fails, the open connections stay, and the next handshake
// gets the new certificate.
func TestCertificateRotationWhileServing(t *testing.T) {
	up := newUpstream(t, nil)
	oldCert := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"rot.test"}})
	newCert := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"rot.test"}})
	services := []entity.Service{testService(t, "s1", up.addr())}
	routes := []entity.Route{testRoute(idA, "s1", paths("/"))}
	b := NewBuilder()
	b.Apply(SnapshotChange{Put: SnapshotInput{Services: services, Routes: routes,
		Certificates: []entity.Certificate{certEntity("c1", oldCert)}, SNIs: []entity.SNI{sniEntity("n1", "rot.test", "c1")}}})
	s := startProxyWith(t, b.Snapshot(), func(c *Config) { c.Listen = tlsListens })
	addr := tlsAddr(t, s)

	var sent, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := tlsClient("rot.test")
			defer client.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("https://" + addr + "/")
				sent.Add(1)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	var stopOnce sync.Once
	stopAll := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	t.Cleanup(stopAll)
	testutil.Eventually(t, 5*time.Second, func() error { return atLeast(sent.Load(), 20) })
	connsBefore := s.Stats().ConnectionsAccepted
	// Rotation as the Admin API makes it: the certificate entity changes.
	b.Apply(SnapshotChange{Put: SnapshotInput{Certificates: []entity.Certificate{certEntity("c1", newCert)}}})
	s.Swap(b.Snapshot())
	mark := sent.Load()
	testutil.Eventually(t, 5*time.Second, func() error { return atLeast(sent.Load(), mark+20) })
	stopAll()
	if failed.Load() != 0 {
		t.Errorf("got %d failed requests of %d, want none", failed.Load(), sent.Load())
	}
	if got := s.Stats().ConnectionsAccepted; got != connsBefore {
		t.Errorf("got %d connections accepted after the rotation, want the %d open before kept", got, connsBefore)
	}
	if got := servedLeaf(t, addr, "rot.test"); !got.Equal(newCert.Cert) {
		t.Errorf("a new handshake got the old certificate, want the new one")
	}
}

// TestBadCertificateEntityIsReported: a certificate that cannot be
// loaded is left out with a warning; its SNIs get the default.
func TestBadCertificateEntityIsReported(t *testing.T) {
	good := testutil.NewCert(t, testutil.CertOptions{})
	other := testutil.NewCert(t, testutil.CertOptions{})
	_, warnings := NewSnapshot(SnapshotInput{Certificates: []entity.Certificate{{ID: "c1", Cert: good.CertPEM, Key: other.KeyPEM}}})
	if len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "c1") {
		t.Fatalf("got warnings %v, want one naming c1", warnings)
	}
}

func atLeast(got, want int64) error {
	if got < want {
		return fmt.Errorf("got %d requests, want %d", got, want)
	}
	return nil
}

// TestRouteProtocolsOverTLS runs Kong's protocol rules with real TLS
// clients (kong/runloop/handler.lua access phase; kong/router/
// transform.lua): an https-only route serves TLS requests and answers a
// plain one with 426 or its https_redirect_status_code; an http-only route
// serves both, since Kong's router does not look at the scheme for http
// routes; route snis are matched on TLS requests only.
func TestRouteProtocolsOverTLS(t *testing.T) {
	up := newUpstream(t, nil)
	httpsOnly := func(code int) func(*entity.Route) {
		return func(r *entity.Route) { r.Protocols, r.HTTPSRedirectStatusCode = []string{"https"}, code }
	}
	httpOnly := func(r *entity.Route) { r.Protocols = []string{"http"} }
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{
		testRoute(idA, "s1", paths("/secure"), httpsOnly(426)),
		testRoute(idB, "s1", paths("/moved"), httpsOnly(308)),
		testRoute(idC, "s1", paths("/plain"), httpOnly),
		testRoute("dddddddd-0000-4000-8000-000000000000", "s1", paths("/named"), snis("named.test")),
	})
	s := startProxyWith(t, snap, func(c *Config) { c.Listen = tlsListens })
	plain, secure := s.Addrs()[0].Addr.String(), tlsAddr(t, s)
	noRedirect := func(c *http.Client) *http.Client {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return c
	}

	tests := []struct {
		name, url, sni string
		wantStatus     int
		wantHeader     string // "Name: value" expected on the answer; "" for none
	}{
		{"https-only over TLS", "https://" + secure + "/secure", "a.test", 200, ""},
		{"https-only over plain HTTP", "http://" + plain + "/secure", "", 426, "Upgrade: TLS/1.2, HTTP/1.1"},
		{"https-only redirect", "http://" + plain + "/moved/x?q=1", "", 308, "Location: https://127.0.0.1/moved/x?q=1"},
		{"http-only over plain HTTP", "http://" + plain + "/plain", "", 200, ""},
		{"http-only over TLS, as Kong routes it", "https://" + secure + "/plain", "a.test", 200, ""},
		{"route sni matched", "https://" + secure + "/named", "named.test", 200, ""},
		{"route sni not matched", "https://" + secure + "/named", "other.test", 404, ""},
		{"route sni ignored on plain HTTP", "http://" + plain + "/named", "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := noRedirect(tlsClient(tt.sni)).Get(tt.url)
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if name, value, ok := strings.Cut(tt.wantHeader, ": "); ok && resp.Header.Get(name) != value {
				t.Fatalf("got %s %q, want %q", name, resp.Header.Get(name), value)
			}
		})
	}
}
