package proxy

import (
	"crypto/tls"
	"fmt"

	"github.com/grapevine-gw/grapevine/internal/listen"
	"github.com/grapevine-gw/grapevine/proxy/tlsconf"
)

// TLS on the proxy's ssl listeners: the certificate is chosen during each
// handshake from the snapshot in use (its certificates and SNIs, see
// tlsconf.Table), so a certificate change is served by the next handshake
// on every listener, with no restart and no connection dropped;
// connections already open keep the certificate they began with.

// prepareTLS sets the default certificates when a listener serves TLS:
// the configured ones, else one generated now, as Kong generates its
// default certificate when ssl_cert is not set.
func (s *Server) prepareTLS(entries []listen.Listener) error {
	ssl := false
	for _, e := range entries {
		ssl = ssl || e.Has("ssl")
	}
	if !ssl || len(s.defaultCerts) > 0 {
		return nil
	}
	if len(s.cfg.Certificates) > 0 {
		s.defaultCerts = s.cfg.Certificates
		return nil
	}
	cert, err := tlsconf.Generated()
	if err != nil {
		return fmt.Errorf("proxy_listen: %w", err)
	}
	s.defaultCerts = []tls.Certificate{*cert}
	s.log.Info().Msg("proxy: ssl_cert is not set; serving a generated self-signed certificate for names no SNI entity names")
	return nil
}

// serverTLSConfig is the configuration of one ssl listener; with http2,
// ALPN offers h2 before http/1.1.
func (s *Server) serverTLSConfig(http2 bool) *tls.Config {
	c := &tls.Config{GetCertificate: s.certificateFor, NextProtos: []string{"http/1.1"}}
	_ = http2 // HTTP/2 is not served yet: ALPN offers http/1.1 alone
	s.cfg.TLS.Apply(c)
	return c
}

// certificateFor is the handshake's certificate lookup: the snapshot's
// SNIs first, then the default certificates (the first one the client
// supports, as OpenSSL picks between an RSA and an ECDSA one).
func (s *Server) certificateFor(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert, ok := s.state.Load().snap.certs.Lookup(hello); ok {
		return cert, nil
	}
	for i := range s.defaultCerts {
		if hello.SupportsCertificate(&s.defaultCerts[i]) == nil {
			return &s.defaultCerts[i], nil
		}
	}
	if len(s.defaultCerts) == 0 {
		return nil, fmt.Errorf("no certificate for server name %q", hello.ServerName)
	}
	return &s.defaultCerts[0], nil
}

// applyTLS applies a batch's certificate, SNI and CA certificate changes.
// A certificate that cannot be loaded is left out and reported; its SNIs
// then get the default certificate.
func (b *Builder) applyTLS(c SnapshotChange, w *[]error) {
	for _, id := range c.Deleted.SNIs {
		b.tls.DeleteSNI(id)
	}
	for _, id := range c.Deleted.Certificates {
		b.tls.DeleteCertificate(id)
	}
	for _, id := range c.Deleted.CACertificates {
		b.tls.DeleteCA(id)
	}
	for _, e := range c.Put.Certificates {
		if err := b.tls.PutCertificate(e.ID, e.Cert, e.Key, deref(e.CertAlt), deref(e.KeyAlt)); err != nil {
			*w = append(*w, err)
		}
	}
	for _, e := range c.Put.SNIs {
		if e.Certificate != nil {
			b.tls.PutSNI(e.ID, e.Name, e.Certificate.ID)
		}
	}
	for _, e := range c.Put.CACertificates {
		if err := b.tls.PutCA(e.ID, e.Cert); err != nil {
			*w = append(*w, err)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
