package tlsconf

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"
)

// selfSigned makes a default certificate for key as Kong generates
// kong-default.crt at start (kong/cmd/utils/prefix_handler.lua
// gen_default_ssl_cert): self-signed, for "localhost", valid for 20
// years.
func selfSigned(key crypto.Signer) (*tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, fmt.Errorf("generating the default certificate's serial: %w", err)
	}
	now := time.Now()
	usage := x509.KeyUsageDigitalSignature
	if _, ok := key.(*rsa.PrivateKey); ok {
		usage |= x509.KeyUsageKeyEncipherment // TLS 1.2's RSA key exchange
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{CommonName: "localhost", Organization: []string{"Grapevine"},
			OrganizationalUnit: []string{"Grapevine default certificate"}},
		DNSNames:              []string{"localhost"},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("generating the default certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the generated certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// LoadPairs reads kong.conf's ssl_cert and ssl_cert_key (or
// admin_ssl_cert, admin_ssl_cert_key): lists of the same length, each
// item a file path, base64-encoded PEM or the PEM itself, pairs taken in
// order (Kong allows an RSA and an ECDSA one; NewDefaults serves each
// client the one it supports). It is the one place this package reads files,
// at start. No list: nil, and the caller generates a certificate.
func LoadPairs(certs, keys []string) ([]tls.Certificate, error) {
	if len(certs) != len(keys) {
		return nil, fmt.Errorf("%d certificates but %d keys; they are taken in pairs", len(certs), len(keys))
	}
	out := make([]tls.Certificate, 0, len(certs))
	for i := range certs {
		certPEM, err := pemOrFile(certs[i])
		if err != nil {
			return nil, err
		}
		keyPEM, err := pemOrFile(keys[i])
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		out = append(out, pair)
	}
	return out, nil
}

// pemOrFile reads a kong.conf certificate or key value as Kong's
// conf_loader does (kong/conf_loader/parse.lua): the file it names when
// one exists, else the value base64-decoded when it decodes to PEM, else
// the value itself as PEM.
func pemOrFile(v string) ([]byte, error) {
	if strings.Contains(v, "-----BEGIN") {
		return []byte(v), nil
	}
	b, err := os.ReadFile(v)
	if err == nil {
		return b, nil
	}
	if dec, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(v)); derr == nil && bytes.Contains(dec, []byte("-----BEGIN")) {
		return dec, nil
	}
	return nil, fmt.Errorf("reading %w", err)
}

// LoadCAPool reads CA certificates (a file path or the PEM itself), as
// nginx's ssl_client_certificate takes them.
func LoadCAPool(v string) (*x509.CertPool, error) {
	raw, err := pemOrFile(v)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("no PEM certificate in %s", describe(v))
	}
	return pool, nil
}

// describe names a value for an error without quoting PEM.
func describe(v string) string {
	if strings.Contains(v, "-----BEGIN") {
		return "the PEM given"
	}
	return v
}

// CertificatesDER reads the certificates of a file path or PEM value.
func CertificatesDER(v string) ([][]byte, error) {
	raw, err := pemOrFile(v)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			out = append(out, block.Bytes)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no PEM certificate in %s", describe(v))
	}
	return out, nil
}
