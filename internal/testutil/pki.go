package testutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync/atomic"
	"testing"
	"time"
)

// KeyType picks the key algorithm of a test certificate.
type KeyType int

// Key algorithms for test certificates.
const (
	ECDSA KeyType = iota // P-256: fast to generate
	RSA                  // 2048 bits
)

// CertOptions describes a test certificate; the zero value is a
// self-signed ECDSA leaf for "test.example", valid for an hour.
type CertOptions struct {
	Key      KeyType
	CA       bool      // a CA certificate (basic constraints CA:TRUE)
	NotAfter time.Time // zero: an hour from now
	DNSNames []string
	Parent   *Cert // signer; nil: self-signed
}

// Cert is a generated certificate and its key, PEM-encoded and parsed.
type Cert struct {
	CertPEM string
	KeyPEM  string // PKCS #8
	Cert    *x509.Certificate
	Key     crypto.Signer
}

var serial atomic.Int64

// NewCert generates a certificate at test time, so no key material is
// ever committed.
func NewCert(t testing.TB, o CertOptions) *Cert {
	t.Helper()
	key := newKey(t, o.Key)
	now := time.Now()
	notAfter := o.NotAfter
	if notAfter.IsZero() {
		notAfter = now.Add(time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: "grapevine test"},
		NotBefore:             now.Add(-2 * time.Hour),
		NotAfter:              notAfter,
		DNSNames:              o.DNSNames,
		BasicConstraintsValid: true,
		IsCA:                  o.CA,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	if len(tmpl.DNSNames) == 0 && !o.CA {
		tmpl.DNSNames = []string{"test.example"}
	}
	parent, signer := tmpl, key
	if o.Parent != nil {
		parent, signer = o.Parent.Cert, o.Parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatalf("create test certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse test certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal test key: %v", err)
	}
	return &Cert{
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		Cert:    cert,
		Key:     key,
	}
}

// PublicKeyPEM is the certificate's public key as a PKIX PEM block.
func (c *Cert) PublicKeyPEM(t testing.TB) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(c.Key.Public())
	if err != nil {
		t.Fatalf("marshal test public key: %v", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func newKey(t testing.TB, kt KeyType) crypto.Signer {
	t.Helper()
	var key crypto.Signer
	var err error
	switch kt {
	case RSA:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatalf("generate test key: %v", err)
	}
	return key
}
