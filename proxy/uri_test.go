package proxy

import "testing"

// TestUpstreamPath covers reference §2.5 (get_upstream_uri_v0) and the docs'
// table for service.path "/s".
func TestUpstreamPath(t *testing.T) {
	tests := []struct {
		name      string
		base      string
		routePath string // "" for a route without paths
		strip     bool
		req       string
		want      string
	}{
		{"docs: no strip", "/s", "/fv0", false, "/fv0/req", "/s/fv0/req"},
		{"docs: strip", "/s", "/tv0", true, "/tv0/req", "/s/req"},
		{"docs: strip whole path", "/s", "/tv0", true, "/tv0", "/s"},
		{"docs: strip keeps trailing slash", "/s", "/tv0", true, "/tv0/", "/s/"},
		{"plain base, strip, postfix without slash", "/s", "/p", true, "/pq", "/s/q"},
		{"plain base, no strip, root request", "/s", "/", false, "/", "/s"},
		{"slash base, strip, postfix", "/s/", "/p", true, "/p/x", "/s/x"},
		{"slash base, strip, postfix without slash", "/s/", "/p", true, "/pq", "/s/q"},
		{"slash base, strip, nothing left", "/s/", "/p", true, "/p", "/s"},
		{"slash base, strip, nothing left after slash route", "/s/", "/p/", true, "/p/", "/s/"},
		{"root base, strip, nothing left", "/", "/p", true, "/p", "/"},
		{"root base, strip, postfix", "/", "/p", true, "/p/x/y", "/x/y"},
		{"root base, strip, root route", "/", "/", true, "/x", "/x"},
		{"slash base, no strip", "/s/", "/p", false, "/p/x", "/s/p/x"},
		{"root base, no strip", "/", "/p", false, "/p/x", "/p/x"},
		{"no paths, strip", "/s", "", true, "/x", "/s/x"},
		{"no paths, strip, root base", "/", "", true, "/x/", "/x/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			matched := -1
			if tt.routePath != "" {
				matched = len(tt.routePath)
			}
			got := string(appendUpstreamPath(nil, []byte(tt.base), []byte(tt.req), tt.strip, matched))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
