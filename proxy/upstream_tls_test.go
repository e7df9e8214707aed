package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// tlsUpstream is an https upstream serving leaf, recording the server
// name and client certificate of each request.
type tlsUpstream struct {
	*httptest.Server
	mu      sync.Mutex // guards the fields below
	sni     string
	client  string // the client certificate's common name, "" for none
	clients int
}

func newTLSUpstream(t *testing.T, leaf *testutil.Cert, chain []*testutil.Cert, clientCA *testutil.Cert) *tlsUpstream {
	t.Helper()
	u := &tlsUpstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.sni, u.client = r.TLS.ServerName, ""
		if len(r.TLS.PeerCertificates) > 0 {
			u.client = r.TLS.PeerCertificates[0].Subject.CommonName
			u.clients++
		}
		u.mu.Unlock()
		w.Write([]byte("ok"))
	}))
	cert := tls.Certificate{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Cert.Raw)
	}
	u.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	if clientCA != nil {
		u.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		u.TLS.ClientCAs = x509.NewCertPool()
		u.TLS.ClientCAs.AddCert(clientCA.Cert)
	}
	u.StartTLS()
	t.Cleanup(u.Close)
	return u
}

func (u *tlsUpstream) seen() (sni, client string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.sni, u.client
}

func caEntity(id string, c *testutil.Cert) entity.CACertificate {
	return entity.CACertificate{ID: id, Cert: c.CertPEM}
}

// httpsService is an https service to u's port on host "localhost".
func httpsService(t *testing.T, u *tlsUpstream, opts ...func(*entity.Service)) entity.Service {
	_, port, _ := net.SplitHostPort(u.Listener.Addr().String())
	svc := testService(t, "s1", "localhost:"+port, opts...)
	svc.Protocol = "https"
	return svc
}

func verify(ids ...string) func(*entity.Service) {
	return func(s *entity.Service) {
		on := true
		s.TLSVerify, s.CACertificates = &on, ids
	}
}

func depth(n int) func(*entity.Service) { return func(s *entity.Service) { s.TLSVerifyDepth = &n } }

// TestUpstreamTLSVerification follows kong/runloop/upstream_ssl.lua: with
// tls_verify the upstream's certificate must chain to the service's
// ca_certificates within tls_verify_depth (nginx's default depth, 1,
// when unset); a failure is nginx's 502 with Kong's message. Without
// tls_verify nothing is checked, as nginx's proxy_ssl_verify is off.
func TestUpstreamTLSVerification(t *testing.T) {
	root := testutil.NewCert(t, testutil.CertOptions{CA: true})
	inter := testutil.NewCert(t, testutil.CertOptions{CA: true, Parent: root})
	leaf := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"localhost"}, Parent: inter})
	wrong := testutil.NewCert(t, testutil.CertOptions{CA: true})
	up := newTLSUpstream(t, leaf, []*testutil.Cert{inter}, nil)
	cas := []entity.CACertificate{caEntity("ca-root", root), caEntity("ca-wrong", wrong)}

	tests := []struct {
		name       string
		opts       []func(*entity.Service)
		wantStatus int
	}{
		{"tls_verify off trusts anything", nil, 200},
		{"the right CA", []func(*entity.Service){verify("ca-root")}, 200},
		{"a wrong CA", []func(*entity.Service){verify("ca-wrong")}, 502},
		{"the right CA among others", []func(*entity.Service){verify("ca-wrong", "ca-root")}, 200},
		{"depth 1 allows one intermediate", []func(*entity.Service){verify("ca-root"), depth(1)}, 200},
		{"depth 0 does not", []func(*entity.Service){verify("ca-root"), depth(0)}, 502},
		{"a CA id not loaded trusts nothing", []func(*entity.Service){verify("ca-missing")}, 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := httpsService(t, up, tt.opts...)
			svc.Retries = 0
			snap, _ := NewSnapshot(SnapshotInput{Services: []entity.Service{svc},
				Routes: []entity.Route{testRoute(idA, "s1", paths("/"))}, CACertificates: cas})
			s := startProxy(t, snap)
			status, _, body := send(t, s, "GET", "/", map[string]string{"Accept": "application/json"})
			if status != tt.wantStatus {
				t.Fatalf("got %d %q, want %d", status, body, tt.wantStatus)
			}
			if status == 502 && !strings.Contains(body, "An invalid response was received from the upstream server") {
				t.Fatalf("got body %q, want Kong's 502 message", body)
			}
		})
	}
}

// TestUpstreamCAChangeWithoutServiceChange: a CA certificate entity
// changed in place reaches the services naming it.
func TestUpstreamCAChangeWithoutServiceChange(t *testing.T) {
	root := testutil.NewCert(t, testutil.CertOptions{CA: true})
	leaf := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"localhost"}, Parent: root})
	wrong := testutil.NewCert(t, testutil.CertOptions{CA: true})
	up := newTLSUpstream(t, leaf, nil, nil)
	svc := httpsService(t, up, verify("ca1"))
	svc.Retries = 0
	b := NewBuilder()
	b.Apply(SnapshotChange{Put: SnapshotInput{Services: []entity.Service{svc},
		Routes: []entity.Route{testRoute(idA, "s1", paths("/"))}, CACertificates: []entity.CACertificate{caEntity("ca1", wrong)}}})
	s := startProxy(t, b.Snapshot())
	if status, _, _ := send(t, s, "GET", "/", nil); status != 502 {
		t.Fatalf("with the wrong CA: got %d, want 502", status)
	}
	b.Apply(SnapshotChange{Put: SnapshotInput{CACertificates: []entity.CACertificate{caEntity("ca1", root)}}})
	s.Swap(b.Snapshot())
	if status, _, _ := send(t, s, "GET", "/", nil); status != 200 {
		t.Fatalf("after the CA changed: got %d, want 200", status)
	}
}

// TestUpstreamMutualTLS: an upstream demanding a client certificate gets
// the service's client_certificate; without one the handshake fails (502).
func TestUpstreamMutualTLS(t *testing.T) {
	clientCA := testutil.NewCert(t, testutil.CertOptions{CA: true})
	client := testutil.NewCert(t, testutil.CertOptions{Parent: clientCA})
	leaf := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"localhost"}})
	up := newTLSUpstream(t, leaf, nil, clientCA)
	withCert := func(s *entity.Service) { s.ClientCertificate = &entity.ForeignKey{ID: "c1"} }

	tests := []struct {
		name       string
		opts       []func(*entity.Service)
		wantStatus int
	}{
		{"without client_certificate", nil, 502},
		{"with client_certificate", []func(*entity.Service){withCert}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := httpsService(t, up, tt.opts...)
			svc.Retries = 0
			snap, _ := NewSnapshot(SnapshotInput{Services: []entity.Service{svc},
				Routes: []entity.Route{testRoute(idA, "s1", paths("/"))}, Certificates: []entity.Certificate{certEntity("c1", client)}})
			s := startProxy(t, snap)
			if status, _, body := send(t, s, "GET", "/", nil); status != tt.wantStatus {
				t.Fatalf("got %d %q, want %d", status, body, tt.wantStatus)
			}
			if _, cn := up.seen(); tt.wantStatus == 200 && cn != "grapevine test" {
				t.Fatalf("the upstream saw client certificate %q, want the service's", cn)
			}
		})
	}
}

// TestUpstreamSNIFollowsHost: the server name sent upstream is the
// service's host, or with preserve_host the client's Host (Kong's
// proxy_ssl_name $upstream_host).
func TestUpstreamSNIFollowsHost(t *testing.T) {
	leaf := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"localhost"}})
	up := newTLSUpstream(t, leaf, nil, nil)
	snap := mustSnapshot(t, []entity.Service{httpsService(t, up)}, []entity.Route{
		testRoute(idA, "s1", paths("/plain")),
		testRoute(idB, "s1", paths("/preserve"), preserveHost),
	})
	s := startProxy(t, snap)
	tests := []struct{ path, host, wantSNI string }{
		{"/plain", "client.test", "localhost"},
		{"/preserve", "client.test", "client.test"},
		{"/preserve", "other.test:8000", "other.test"},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.host, func(t *testing.T) {
			if status, _, _ := send(t, s, "GET", tt.path, map[string]string{"Host": tt.host}); status != 200 {
				t.Fatalf("got %d, want 200", status)
			}
			if sni, _ := up.seen(); sni != tt.wantSNI {
				t.Fatalf("the upstream saw server name %q, want %q", sni, tt.wantSNI)
			}
		})
	}
}
