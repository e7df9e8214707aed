package proxy

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// rsaOnly is a client that supports nothing but RSA certificates: TLS 1.2
// with ECDHE-RSA suites only, as an old client offering RSA suites.
var rsaOnly = &tls.Config{
	MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
	CipherSuites:       []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384},
	InsecureSkipVerify: true, //nolint:gosec // the test reads what is served
}

// ecdsaOnly supports nothing but ECDSA certificates.
var ecdsaOnly = &tls.Config{
	MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
	CipherSuites:       []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	InsecureSkipVerify: true, //nolint:gosec // the test reads what is served
}

// modern is a default client: TLS 1.3, every signature scheme.
var modern = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test reads what is served

func leafWith(t *testing.T, addr string, c *tls.Config) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, c)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func keyKind(c *x509.Certificate) string {
	switch c.PublicKey.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "ECDSA"
	}
	return "other"
}

// TestDefaultCertificates: with no ssl_cert Kong generates an RSA and an
// ECDSA default certificate (kong/cmd/utils/prefix_handler.lua
// gen_default_ssl_cert, both put in ssl_cert), and OpenSSL serves each
// client the one it supports, ECDSA first (Kong's ssl_prefer_server_ciphers
// on); ssl_cert's pairs are served the same way whatever their order.
func TestDefaultCertificates(t *testing.T) {
	rsaCert := testutil.NewCert(t, testutil.CertOptions{Key: testutil.RSA, DNSNames: []string{"rsa.default"}})
	ecCert := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"ecdsa.default"}})
	pair := func(c *testutil.Cert) tls.Certificate {
		p, err := tls.X509KeyPair([]byte(c.CertPEM), []byte(c.KeyPEM))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	configured := []tls.Certificate{pair(rsaCert), pair(ecCert)} // RSA listed first
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		// wantName is the certificate's name for each client: its key
		// type, and for configured ones its DNS name.
		want map[string]string
	}{
		{"generated", nil, map[string]string{"modern": "ECDSA localhost", "rsa only": "RSA localhost", "ecdsa only": "ECDSA localhost"}},
		{"ssl_cert", configured, map[string]string{"modern": "ECDSA ecdsa.default", "rsa only": "RSA rsa.default", "ecdsa only": "ECDSA ecdsa.default"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startProxyWith(t, EmptySnapshot(), func(c *Config) { c.Listen = "127.0.0.1:0 ssl"; c.Certificates = tc.certs })
			addr := s.Addr().String()
			for client, conf := range map[string]*tls.Config{"modern": modern, "rsa only": rsaOnly, "ecdsa only": ecdsaOnly} {
				leaf := leafWith(t, addr, conf)
				if got := keyKind(leaf) + " " + leaf.DNSNames[0]; got != tc.want[client] {
					t.Errorf("%s client: got %s, want %s", client, got, tc.want[client])
				}
			}
		})
	}
}
