package tlsconf

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Defaults are the certificates a TLS listener serves for server names no
// SNI entity names: ssl_cert's pairs (admin_ssl_cert's for the Admin
// API), or the pair Kong generates when none is set (kong/cmd/utils/
// prefix_handler.lua gen_default_ssl_cert: an RSA 2048 and an ECDSA P-256
// certificate). Of several, a client gets the first one it supports in
// OpenSSL's order under Kong's ssl_prefer_server_ciphers on: ECDSA, then
// Ed25519, then RSA. A client that supports ECDSA therefore gets the
// ECDSA one, an RSA-only client (TLS 1.2 with RSA suites only) the RSA
// one. Safe for concurrent use.
type Defaults struct {
	certs []*tls.Certificate // by preference
	// rsa makes the generated RSA certificate on the first handshake that
	// needs it: 2048-bit keys take up to a second to generate, and nearly
	// every client takes the ECDSA one. nil unless generated.
	rsa func() (*tls.Certificate, error)
}

// NewDefaults serves certs (ssl_cert's pairs, in any order).
func NewDefaults(certs []tls.Certificate) *Defaults {
	d := &Defaults{}
	for i := range certs {
		d.certs = append(d.certs, &certs[i])
	}
	slices.SortStableFunc(d.certs, func(a, b *tls.Certificate) int { return keyRank(a) - keyRank(b) })
	return d
}

// GeneratedDefaults makes Kong's default pair: the ECDSA certificate now,
// the RSA one when a client first needs it.
func GeneratedDefaults() (*Defaults, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the default certificate's key: %w", err)
	}
	ec, err := selfSigned(key)
	if err != nil {
		return nil, err
	}
	return &Defaults{certs: []*tls.Certificate{ec}, rsa: sync.OnceValues(func() (*tls.Certificate, error) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generating the default RSA certificate's key: %w", err)
		}
		return selfSigned(key)
	})}, nil
}

// keyRank orders certificates by key type as OpenSSL's server
// preference does.
func keyRank(c *tls.Certificate) int {
	switch c.PrivateKey.(type) {
	case *ecdsa.PrivateKey:
		return 0
	case ed25519.PrivateKey:
		return 1
	case *rsa.PrivateKey:
		return 2
	}
	return 3
}

// Pick is the certificate for hello: the first the client supports, else
// the first of all (the handshake then fails as it would with OpenSSL).
func (d *Defaults) Pick(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	for _, c := range d.certs {
		if hello.SupportsCertificate(c) == nil {
			return c, nil
		}
	}
	if d.rsa != nil {
		c, err := d.rsa()
		if err != nil {
			return nil, err
		}
		if hello.SupportsCertificate(c) == nil {
			return c, nil
		}
	}
	if len(d.certs) == 0 {
		return nil, errors.New("no default certificate")
	}
	return d.certs[0], nil
}

// Certificates lists the certificates made or given so far, in order of
// preference.
func (d *Defaults) Certificates() []*tls.Certificate { return d.certs }
