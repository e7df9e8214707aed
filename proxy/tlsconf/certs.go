package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
)

// Pair is a certificate entity ready to serve: its certificate and key,
// and the alternative pair of the other key type (cert_alt, key_alt)
// when it has one.
type Pair struct {
	Main *tls.Certificate
	Alt  *tls.Certificate // nil without cert_alt
}

// NewPair parses a certificate entity's PEM fields; certAlt and keyAlt
// may be empty. The chain after the first certificate is sent too.
func NewPair(cert, key, certAlt, keyAlt string) (*Pair, error) {
	main, err := tls.X509KeyPair([]byte(cert), []byte(key))
	if err != nil {
		return nil, fmt.Errorf("certificate and key: %w", err)
	}
	p := &Pair{Main: &main}
	if certAlt != "" && keyAlt != "" {
		alt, err := tls.X509KeyPair([]byte(certAlt), []byte(keyAlt))
		if err != nil {
			return nil, fmt.Errorf("alternative certificate and key: %w", err)
		}
		p.Alt = &alt
	}
	return p, nil
}

// pick returns the pair's certificate the client can use: the alternative
// when the client supports it and not the main one (an RSA-only client
// beside an ECDSA main certificate), else the main one, as OpenSSL picks
// among the certificates nginx sets.
func (p *Pair) pick(hello *tls.ClientHelloInfo) *tls.Certificate {
	if p.Alt != nil && hello != nil && hello.SupportsCertificate(p.Main) != nil && hello.SupportsCertificate(p.Alt) == nil {
		return p.Alt
	}
	return p.Main
}

// Table is an immutable map from server names to certificates, as Kong's
// SNIs entities make it: exact names, wildcard names ("*.example.com",
// "example.*") and "*", which stands for every name no other SNI has.
type Table struct {
	byName map[string]*Pair
}

// Lookup finds the certificate for a client's server name in Kong's order
// (kong/runloop/certificate.lua find_certificate): the exact name, then
// the name with its first label as "*" ("*.b.c" for "a.b.c", when it has
// three labels or more), then with its last label as "*" ("a.b.*"), then
// the SNI "*". ok is false when none matches: the default certificate is
// the caller's.
func (t *Table) Lookup(hello *tls.ClientHelloInfo) (cert *tls.Certificate, ok bool) {
	if t == nil || len(t.byName) == 0 {
		return nil, false
	}
	p := t.find(strings.ToLower(strings.TrimSuffix(hello.ServerName, ".")))
	if p == nil {
		return nil, false
	}
	return p.pick(hello), true
}

func (t *Table) find(name string) *Pair {
	if name != "" {
		if p := t.byName[name]; p != nil {
			return p
		}
		if i := strings.IndexByte(name, '.'); i > 0 && strings.IndexByte(name[i+1:], '.') > 0 {
			if p := t.byName["*"+name[i:]]; p != nil {
				return p
			}
		}
		if i := strings.LastIndexByte(name, '.'); i > 0 && i < len(name)-1 {
			if p := t.byName[name[:i+1]+"*"]; p != nil {
				return p
			}
		}
	}
	return t.byName["*"]
}

// Len is the number of server names in the table.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.byName)
}

// Store keeps the certificate entities, SNIs and CA certificates of a
// configuration, parsed once per version, and builds Tables from them. A
// Store belongs to one goroutine (the snapshot builder).
type Store struct {
	pairs   map[string]*Pair             // certificate id → parsed pair
	snis    map[string]sni               // SNI id → name and certificate id
	cas     map[string]*x509.Certificate // CA certificate id → parsed
	table   *Table                       // the last table built; nil when it must be rebuilt
	changed bool
}

type sni struct{ name, certID string }

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{pairs: map[string]*Pair{}, snis: map[string]sni{}, cas: map[string]*x509.Certificate{}}
}

// PutCertificate parses and keeps a certificate entity; on error the
// entity is left out (its SNIs then serve the default certificate).
func (s *Store) PutCertificate(id, cert, key, certAlt, keyAlt string) error {
	s.changed = true
	p, err := NewPair(cert, key, certAlt, keyAlt)
	if err != nil {
		delete(s.pairs, id)
		return fmt.Errorf("certificate %s: %w", id, err)
	}
	s.pairs[id] = p
	return nil
}

// DeleteCertificate forgets a certificate entity.
func (s *Store) DeleteCertificate(id string) {
	s.changed = true
	delete(s.pairs, id)
}

// PutSNI keeps an SNI entity: name served with certificate certID.
func (s *Store) PutSNI(id, name, certID string) {
	s.changed = true
	s.snis[id] = sni{name: strings.ToLower(name), certID: certID}
}

// DeleteSNI forgets an SNI entity.
func (s *Store) DeleteSNI(id string) {
	s.changed = true
	delete(s.snis, id)
}

// PutCA parses and keeps a CA certificate entity.
func (s *Store) PutCA(id, cert string) error {
	block, _ := pem.Decode([]byte(cert))
	if block == nil {
		delete(s.cas, id)
		return fmt.Errorf("ca certificate %s: no PEM certificate", id)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		delete(s.cas, id)
		return fmt.Errorf("ca certificate %s: %w", id, err)
	}
	s.cas[id] = c
	return nil
}

// DeleteCA forgets a CA certificate entity.
func (s *Store) DeleteCA(id string) { delete(s.cas, id) }

// Pair returns a certificate entity's parsed pair, nil when it is unknown
// or could not be parsed.
func (s *Store) Pair(id string) *Pair { return s.pairs[id] }

// CA returns a CA certificate entity, parsed; nil when unknown.
func (s *Store) CA(id string) *x509.Certificate { return s.cas[id] }

// Table returns the server-name table of the certificates and SNIs as
// they stand. It is rebuilt (in time proportional to the SNIs) only after
// a certificate or SNI changed; tables handed out are never changed.
func (s *Store) Table() *Table {
	if s.table != nil && !s.changed {
		return s.table
	}
	byName := make(map[string]*Pair, len(s.snis))
	for _, n := range s.snis {
		if p := s.pairs[n.certID]; p != nil {
			byName[n.name] = p
		}
	}
	s.table, s.changed = &Table{byName: byName}, false
	return s.table
}
