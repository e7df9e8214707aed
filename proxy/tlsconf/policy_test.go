package tlsconf

import (
	"crypto/tls"
	"slices"
	"testing"
)

// TestParsePolicy follows kong/conf_loader/parse.lua: a preset sets the
// protocols and ciphers whatever ssl_protocols says; "custom" takes
// ssl_ciphers and ssl_protocols as written.
func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name                      string
		suite, ciphers, protocols string
		wantMin, wantMax          uint16
		wantCipher                uint16 // one suite that must be allowed; 0: Go's defaults
		wantErr                   bool
	}{
		{"intermediate ignores ssl_protocols", "intermediate", "", "TLSv1", tls.VersionTLS12, tls.VersionTLS13, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, false},
		{"modern is TLS 1.3 only", "modern", "", "", tls.VersionTLS13, tls.VersionTLS13, 0, false},
		{"old allows TLS 1.0", "old", "", "", tls.VersionTLS10, tls.VersionTLS13, tls.TLS_RSA_WITH_AES_128_CBC_SHA, false},
		{"custom", "custom", "ECDHE-ECDSA-AES256-GCM-SHA384", "TLSv1.2", tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, false},
		{"custom with only DHE ciphers", "custom", "DHE-RSA-AES128-GCM-SHA256", "TLSv1.2", 0, 0, 0, true},
		{"custom with an expression", "custom", "HIGH:!aNULL", "TLSv1.2", 0, 0, 0, true},
		{"unknown suite", "fips", "", "", 0, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy(tt.suite, tt.ciphers, tt.protocols)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %+v, want an error", p)
				}
				return
			}
			if err != nil || p.MinVersion != tt.wantMin || p.MaxVersion != tt.wantMax {
				t.Fatalf("got %+v, %v; want versions %x-%x", p, err, tt.wantMin, tt.wantMax)
			}
			if tt.wantCipher != 0 && !slices.Contains(p.CipherSuites, tt.wantCipher) {
				t.Fatalf("got ciphers %v, want %x among them", p.CipherSuites, tt.wantCipher)
			}
		})
	}
}
