package entity

import "testing"

// TestFormatTarget follows kong/tools/ip.lua (normalize_ip, format_host)
// and kong/db/dao/targets.lua (DEFAULT_PORT 8000).
func TestFormatTarget(t *testing.T) {
	tests := []struct{ in, want string }{
		{"10.0.0.1", "10.0.0.1:8000"},
		{"001.002.003.004:123", "1.2.3.4:123"},
		{"10.0.0.1:0", "10.0.0.1:0"}, // a given port 0 is kept
		{"::1", "[0000:0000:0000:0000:0000:0000:0000:0001]:8000"},
		{"[FE80::1]:443", "[fe80:0000:0000:0000:0000:0000:0000:0001]:443"},
		{"example.test", "example.test:8000"},
		{"example.test.:81", "example.test.:81"}, // an FQDN may end in a dot
		{"my_host", "my_host:8000"},
		{"256.0.0.1", ""},
		{"1.2.3", ""},
		{"10.0.0.1:65536", ""},
		{"a..test", ""},
		{"a-.test", ""},
		{"[::1", ""},
		{"[::1]x", ""},
		{"1::2::3", ""},
		{"a b", ""},
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := FormatTarget(tc.in); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
