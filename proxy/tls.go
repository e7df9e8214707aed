package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"github.com/grapevine-gw/grapevine/entity"

	"github.com/grapevine-gw/grapevine/internal/listen"
	"github.com/grapevine-gw/grapevine/proxy/tlsconf"
)

// TLS on the proxy's ssl listeners: the certificate is chosen during each
// handshake from the snapshot in use (its certificates and SNIs, see
// tlsconf.Table), so a certificate change is served by the next handshake
// on every listener, with no restart and no connection dropped;
// connections already open keep the certificate they began with.

// prepareTLS sets the default certificates when a listener serves TLS:
// the configured ones, else Kong's generated pair (tlsconf.Defaults).
func (s *Server) prepareTLS(entries []listen.Listener) error {
	ssl := false
	for _, e := range entries {
		ssl = ssl || e.Has("ssl")
	}
	if !ssl || s.defaults != nil {
		return nil
	}
	if len(s.cfg.Certificates) > 0 {
		s.defaults = tlsconf.NewDefaults(s.cfg.Certificates)
		return nil
	}
	d, err := tlsconf.GeneratedDefaults()
	if err != nil {
		return fmt.Errorf("proxy_listen: %w", err)
	}
	s.defaults = d
	s.log.Info().Msg("proxy: ssl_cert is not set; serving generated self-signed certificates (ECDSA, and RSA to clients without ECDSA) for names no SNI entity names")
	return nil
}

// serverTLSConfig is the configuration of one ssl listener; with http2,
// ALPN offers h2 before http/1.1.
func (s *Server) serverTLSConfig(http2 bool) *tls.Config {
	c := &tls.Config{GetCertificate: s.certificateFor, NextProtos: []string{"http/1.1"}}
	if http2 {
		c.NextProtos = []string{"h2", "http/1.1"}
	}
	s.cfg.TLS.Apply(c)
	return c
}

// certificateFor is the handshake's certificate lookup: the snapshot's
// SNIs first, then the default certificates (tlsconf.Defaults: the first
// one the client supports, as OpenSSL picks between an RSA and an ECDSA
// one).
func (s *Server) certificateFor(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert, ok := s.state.Load().snap.certs.Lookup(hello); ok {
		return cert, nil
	}
	if s.defaults == nil {
		return nil, fmt.Errorf("no certificate for server name %q", hello.ServerName)
	}
	return s.defaults.Pick(hello)
}

// applyTLS applies a batch's certificate, SNI and CA certificate changes.
// A certificate that cannot be loaded is left out and reported; its SNIs
// then get the default certificate.
// It returns the ids of the certificates and CA certificates changed, whose
// services must be compiled again.
func (b *Builder) applyTLS(c SnapshotChange, w *[]error) map[string]bool {
	changed := map[string]bool{}
	for _, id := range c.Deleted.SNIs {
		b.tls.DeleteSNI(id)
	}
	for _, id := range c.Deleted.Certificates {
		b.tls.DeleteCertificate(id)
		changed[id] = true
	}
	for _, id := range c.Deleted.CACertificates {
		b.tls.DeleteCA(id)
		changed[id] = true
	}
	for _, e := range c.Put.Certificates {
		changed[e.ID] = true
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
		changed[e.ID] = true
		if err := b.tls.PutCA(e.ID, e.Cert); err != nil {
			*w = append(*w, err)
		}
	}
	return changed
}

// refreshTLSServices compiles again the https services whose client
// certificate or CA certificates changed (and were not in the batch).
func (b *Builder) refreshTLSServices(changed map[string]bool, w *[]error) {
	if len(changed) == 0 {
		return
	}
	var again []entity.Service
	for _, svc := range b.services {
		if usesAny(&svc.e, changed) {
			again = append(again, svc.e)
		}
	}
	for i := range again {
		b.putService(&again[i], w)
	}
}

func usesAny(e *entity.Service, ids map[string]bool) bool {
	if e.ClientCertificate != nil && ids[e.ClientCertificate.ID] {
		return true
	}
	for _, id := range e.CACertificates {
		if ids[id] {
			return true
		}
	}
	return false
}

// upstreamTLS compiles a service's upstream TLS (nil unless https): the
// same pointer for the same settings and certificates. A certificate it
// names that is missing or could not be loaded is reported; the service
// then goes without it (verification against a missing CA fails, as
// Kong's empty store would).
func (b *Builder) upstreamTLS(e *entity.Service, w *[]error) *tls.Config {
	if e.Protocol != "https" && e.Protocol != "grpcs" {
		return nil
	}
	u := tlsconf.Upstream{Verify: e.TLSVerify != nil && *e.TLSVerify, Depth: e.TLSVerifyDepth}
	if e.ClientCertificate != nil {
		if p := b.tls.Pair(e.ClientCertificate.ID); p != nil {
			u.Client = p.Main
		} else {
			*w = append(*w, fmt.Errorf("service %s: client_certificate %s is not loaded", e.ID, e.ClientCertificate.ID))
		}
	}
	for _, id := range e.CACertificates {
		if ca := b.tls.CA(id); ca != nil {
			u.CAs = append(u.CAs, ca)
		} else {
			*w = append(*w, fmt.Errorf("service %s: ca_certificate %s is not loaded", e.ID, id))
		}
	}
	if u.Verify && len(e.CACertificates) > 0 && len(u.CAs) == 0 {
		u.CAs = []*x509.Certificate{} // none loaded: trust nothing rather than the system's roots
	}
	fp := u.Fingerprint()
	if c, ok := b.upstreamTLSs[fp]; ok {
		return c
	}
	c := u.ClientConfig()
	b.upstreamTLSs[fp] = c
	return c
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
