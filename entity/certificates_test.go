package entity

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// testPKI is one set of certificates generated for a test.
type testPKI struct {
	rsa, ec, ec2, ca, expiredCA, leafOfCA *testutil.Cert
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	ca := testutil.NewCert(t, testutil.CertOptions{CA: true})
	return testPKI{
		rsa:       testutil.NewCert(t, testutil.CertOptions{Key: testutil.RSA}),
		ec:        testutil.NewCert(t, testutil.CertOptions{}),
		ec2:       testutil.NewCert(t, testutil.CertOptions{}),
		ca:        ca,
		expiredCA: testutil.NewCert(t, testutil.CertOptions{CA: true, NotAfter: time.Now().Add(-time.Hour)}),
		leafOfCA:  testutil.NewCert(t, testutil.CertOptions{Parent: ca}),
	}
}

// jsonString quotes s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// tlsKindExamples are the round-trip examples of the TLS kinds; their
// certificates are generated, so they cannot be literals.
func tlsKindExamples(t *testing.T) map[string][]string {
	p := newTestPKI(t)
	const id = `"6ba7b810-9dad-41d1-80b4-00c04fd430c9"`
	return map[string][]string{
		"certificates": {
			`{"cert":` + jsonString(p.ec.CertPEM) + `,"key":` + jsonString(p.ec.KeyPEM) + `}`,
			`{"cert":` + jsonString(p.rsa.CertPEM) + `,"key":` + jsonString(p.rsa.KeyPEM) +
				`,"cert_alt":` + jsonString(p.ec.CertPEM) + `,"key_alt":` + jsonString(p.ec.KeyPEM) +
				`,"tags":["t"],"snis":["a.test"]}`,
		},
		"snis":            {`{"name":"*.a.test","certificate":{"id":` + id + `},"tags":["t"]}`},
		"ca_certificates": {`{"cert":` + jsonString(p.ca.CertPEM) + `,"tags":["t"]}`},
		"key_sets":        {`{}`, `{"name":"ks","tags":["t"]}`},
		"keys": {
			`{"kid":"k1","jwk":` + jsonString(`{"kid":"k1","kty":"EC","crv":"P-256","x":"`+b64(p.ec.Cert.PublicKey, "x")+`","y":"`+b64(p.ec.Cert.PublicKey, "y")+`"}`) + `}`,
			`{"name":"k","kid":"k2","set":{"id":` + id + `},"tags":["t"],"pem":{"private_key":` + jsonString(p.ec.KeyPEM) +
				`,"public_key":` + jsonString(p.ec.PublicKeyPEM(t)) + `}}`,
		},
	}
}

// TestCertificateChecks: Kong's certificates.lua checks, with its messages.
func TestCertificateChecks(t *testing.T) {
	p := newTestPKI(t)
	q := jsonString
	tests := []struct {
		name, input, want string // want: "" = valid, else a substring of the error
	}{
		{"valid rsa", `{"cert":` + q(p.rsa.CertPEM) + `,"key":` + q(p.rsa.KeyPEM) + `}`, ""},
		{"valid ec with rsa alt", `{"cert":` + q(p.ec.CertPEM) + `,"key":` + q(p.ec.KeyPEM) +
			`,"cert_alt":` + q(p.rsa.CertPEM) + `,"key_alt":` + q(p.rsa.KeyPEM) + `}`, ""},
		{"not a certificate", `{"cert":"bar","key":` + q(p.ec.KeyPEM) + `}`, "cert: invalid certificate: x509.new: "},
		{"not a key", `{"cert":` + q(p.ec.CertPEM) + `,"key":"foo"}`, "key: invalid key: pkey.new: "},
		{"key of another certificate", `{"cert":` + q(p.ec.CertPEM) + `,"key":` + q(p.ec2.KeyPEM) + `}`,
			"schema violation (certificate does not match key)"},
		{"alt key of another certificate", `{"cert":` + q(p.rsa.CertPEM) + `,"key":` + q(p.rsa.KeyPEM) +
			`,"cert_alt":` + q(p.ec.CertPEM) + `,"key_alt":` + q(p.ec2.KeyPEM) + `}`,
			"schema violation (alternative certificate does not match key)"},
		{"alt of the same type", `{"cert":` + q(p.ec.CertPEM) + `,"key":` + q(p.ec.KeyPEM) +
			`,"cert_alt":` + q(p.ec2.CertPEM) + `,"key_alt":` + q(p.ec2.KeyPEM) + `}`,
			"certificate and alternative certificate need to have different type (e.g. RSA and ECDSA), the provided certificates were both of the same type"},
		{"alt cert without key", `{"cert":` + q(p.ec.CertPEM) + `,"key":` + q(p.ec.KeyPEM) + `,"cert_alt":` + q(p.rsa.CertPEM) + `}`,
			"all or none of these fields must be set: 'cert_alt', 'key_alt'"},
		{"cert missing", `{"key":` + q(p.ec.KeyPEM) + `}`, "cert: required field missing"},
		{"sni with a port", `{"cert":` + q(p.ec.CertPEM) + `,"key":` + q(p.ec.KeyPEM) + `,"snis":["a.test:80"]}`,
			"snis.1: must not have a port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkValidation(t, Certificates, tc.input, tc.want)
		})
	}
}

// TestWildcardNames: kong/db/schema/typedefs.lua validate_wildcard_host.
func TestWildcardNames(t *testing.T) {
	tests := []struct{ name, want string }{
		{"example.com", ""},
		{"*.example.com", ""},
		{"example.*", ""},
		{"*example.com", ""}, // Kong checks only the wildcard's position
		{"a.*.example.com", "wildcard must be leftmost or rightmost character"},
		{"*.example.*", "only one wildcard must be specified"},
		{"1.2.3.4", "must not be an IP"},
		{"example.com:443", "must not have a port"},
		{"*.exa mple.com", "invalid value: wildcard.exa mple.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkWildcardName(tc.name); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCACertificateChecks: kong/db/schema/entities/ca_certificates.lua.
func TestCACertificateChecks(t *testing.T) {
	p := newTestPKI(t)
	q := jsonString
	tests := []struct{ name, input, want string }{
		{"valid", `{"cert":` + q(p.ca.CertPEM) + `}`, ""},
		{"not a CA", `{"cert":` + q(p.leafOfCA.CertPEM) + `}`,
			`schema violation (certificate does not appear to be a CA because it is missing the "CA" basic constraint)`},
		{"expired", `{"cert":` + q(p.expiredCA.CertPEM) + `}`,
			`schema violation (certificate expired, "Not After" time is in the past)`},
		{"two at once", `{"cert":` + q(p.ca.CertPEM+p.expiredCA.CertPEM) + `}`,
			"schema violation (please submit only one certificate at a time)"},
		{"not a certificate", `{"cert":"bar"}`, "cert: invalid certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkValidation(t, CACertificates, tc.input, tc.want)
		})
	}
	t.Run("digest", func(t *testing.T) {
		in := map[string]any{"cert": p.ca.CertPEM, "cert_digest": "mine"}
		doc, err := CACertificates.Validate(in)
		if err != nil {
			t.Fatalf("validate: %v", err)
		}
		CACertificates.OnWrite(in, doc) // what every write does
		sum := sha256.Sum256(p.ca.Cert.Raw)
		if want := hex.EncodeToString(sum[:]); doc["cert_digest"] != want {
			t.Errorf("got cert_digest %v, want %s (computed, whatever was sent)", doc["cert_digest"], want)
		}
	})
}

// checkValidation validates input with s and compares the outcome.
func checkValidation(t *testing.T, s *Schema, input, want string) {
	t.Helper()
	var in map[string]any
	if err := json.Unmarshal([]byte(input), &in); err != nil {
		t.Fatalf("bad test input: %v", err)
	}
	_, err := s.Validate(in)
	switch {
	case want == "" && err != nil:
		t.Fatalf("got error %v, want none", err)
	case want != "" && err == nil:
		t.Fatalf("got no error, want %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("got error %q, want one containing %q", err.Error(), want)
	}
	if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("error %q quotes a private key", err.Error())
	}
}
