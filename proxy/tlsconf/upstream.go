package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Upstream describes the TLS a service asks of its upstream (Kong's
// kong/runloop/upstream_ssl.lua set_service_ssl).
type Upstream struct {
	// Verify is tls_verify: check the upstream's certificate. Off by
	// default, as nginx's proxy_ssl_verify is.
	Verify bool
	// Depth is tls_verify_depth; nil: nginx's default, 1.
	Depth *int
	// CAs are the service's ca_certificates; nil: the system's roots
	// (Kong's lua_ssl_trusted_certificate = system); empty but not nil:
	// trust nothing.
	CAs []*x509.Certificate
	// Client is the service's client_certificate, presented when the
	// upstream asks for one; nil for none.
	Client *tls.Certificate
}

// defaultVerifyDepth is nginx's proxy_ssl_verify_depth default.
const defaultVerifyDepth = 1

// Fingerprint names the configuration: equal for equal settings and
// equal certificates, so connections can be shared between services and
// kept across snapshots while nothing changed.
func (u Upstream) Fingerprint() string {
	var b strings.Builder
	b.WriteString(strconv.FormatBool(u.Verify))
	if u.Depth != nil {
		b.WriteString("/" + strconv.Itoa(*u.Depth))
	}
	if u.CAs != nil {
		b.WriteString("/cas")
	}
	for _, ca := range u.CAs {
		sum := sha256.Sum256(ca.Raw)
		b.WriteString("/ca:" + hex.EncodeToString(sum[:8]))
	}
	if u.Client != nil && len(u.Client.Certificate) > 0 {
		sum := sha256.Sum256(u.Client.Certificate[0])
		b.WriteString("/client:" + hex.EncodeToString(sum[:8]))
	}
	return b.String()
}

// ClientConfig is the tls.Config of connections to the upstream; each
// connection sets its ServerName. As nginx does, the client certificate
// is sent whenever the upstream asks, whichever CAs it names.
func (u Upstream) ClientConfig() *tls.Config {
	c := &tls.Config{InsecureSkipVerify: !u.Verify} //nolint:gosec // Kong's default: tls_verify off
	if u.Client != nil {
		client := u.Client
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return client, nil }
	}
	if !u.Verify {
		return c
	}
	if u.CAs != nil {
		c.RootCAs = x509.NewCertPool()
		for _, ca := range u.CAs {
			c.RootCAs.AddCert(ca)
		}
	}
	depth := defaultVerifyDepth
	if u.Depth != nil {
		depth = *u.Depth
	}
	c.VerifyConnection = func(cs tls.ConnectionState) error { return checkDepth(cs.VerifiedChains, depth) }
	return c
}

// checkDepth is OpenSSL's verify depth: depth N allows the peer's
// certificate, N intermediate CAs and the trust anchor, a chain of N+2.
func checkDepth(chains [][]*x509.Certificate, depth int) error {
	for _, chain := range chains {
		if len(chain) <= depth+2 {
			return nil
		}
	}
	if len(chains) == 0 {
		return errors.New("upstream certificate not verified")
	}
	return fmt.Errorf("upstream certificate chain longer than tls_verify_depth %d allows", depth)
}
