package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"github.com/grapevine-gw/grapevine/proxy/tlsconf"
)

// tlsFlags are the cluster command's TLS options for an https Admin API.
type tlsFlags struct {
	ca, cert, key string
}

// pinning trusts an https admin listener read from the node's own
// configuration: its admin_ssl_cert certificates, compared byte for byte
// (they need not name the address dialled); with none the node serves a
// certificate it generated at start, which no file holds, and the
// connection is encrypted but the server not checked.
type pinning struct {
	certs []string // admin_ssl_cert entries: paths or PEM
}

// client is the HTTP client for the Admin API.
func (f tlsFlags) client(pin *pinning) (*http.Client, error) {
	c := &tls.Config{}
	if (f.cert == "") != (f.key == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if f.cert != "" {
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	switch {
	case f.ca != "":
		pool, err := tlsconf.LoadCAPool(f.ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		c.RootCAs = pool
	case pin != nil:
		if err := pin.apply(c); err != nil {
			return nil, err
		}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: c}}, nil
}

func (p *pinning) apply(c *tls.Config) error {
	c.InsecureSkipVerify = true //nolint:gosec // checked below against admin_ssl_cert, or a generated certificate
	if len(p.certs) == 0 {
		return nil
	}
	var want [][]byte
	for _, entry := range p.certs {
		raw, err := tlsconf.CertificatesDER(entry)
		if err != nil {
			return fmt.Errorf("admin_ssl_cert: %w", err)
		}
		want = append(want, raw...)
	}
	c.VerifyPeerCertificate = func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		for _, w := range want {
			if len(rawCerts) > 0 && bytes.Equal(rawCerts[0], w) {
				return nil
			}
		}
		return errors.New("the Admin API presented a certificate other than admin_ssl_cert")
	}
	return nil
}
