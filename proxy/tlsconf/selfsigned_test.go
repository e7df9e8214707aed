package tlsconf

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// TestLoadPairs: each ssl_cert / ssl_cert_key item is read as Kong's
// conf_loader reads it (kong/conf_loader/parse.lua): a file path, else
// base64-encoded PEM, else PEM; the lists pair up in order.
func TestLoadPairs(t *testing.T) {
	a := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"a.test"}})
	b := testutil.NewCert(t, testutil.CertOptions{Key: testutil.RSA, DNSNames: []string{"b.test"}})
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	if err := os.WriteFile(certPath, []byte(a.CertPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, []byte(a.KeyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name        string
		certs, keys []string
		wantNames   []string
		wantErr     bool
	}{
		{"files", []string{certPath}, []string{keyPath}, []string{"a.test"}, false},
		{"pem", []string{b.CertPEM}, []string{b.KeyPEM}, []string{"b.test"}, false},
		{"base64", []string{b64([]byte(b.CertPEM))}, []string{b64([]byte(b.KeyPEM))}, []string{"b.test"}, false},
		{"a list of two", []string{certPath, b64([]byte(b.CertPEM))}, []string{keyPath, b.KeyPEM}, []string{"a.test", "b.test"}, false},
		{"missing file", []string{filepath.Join(dir, "nope.crt")}, []string{keyPath}, nil, true},
		{"unpaired", []string{certPath}, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pairs, err := LoadPairs(tt.certs, tt.keys)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %d pairs, want an error", len(pairs))
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if len(pairs) != len(tt.wantNames) {
				t.Fatalf("got %d pairs, want %d", len(pairs), len(tt.wantNames))
			}
			for i, p := range pairs {
				if got := p.Leaf.DNSNames[0]; got != tt.wantNames[i] {
					t.Errorf("pair %d: got %s, want %s", i, got, tt.wantNames[i])
				}
			}
		})
	}
}
