package kongheaders

import "testing"

// kong/conf_loader/init.lua builds enabled_headers from these tokens, and
// kong/conf_loader/parse.lua refuses any other with "headers: invalid
// entry '…'".
func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		tokens   []string
		upstream bool
		want     Set
		wantErr  string
	}{
		{"Kong's default", []string{"server_tokens", "latency_tokens", "x-kong-request-id"}, false, Default, ""},
		{"off", []string{"off"}, false, 0, ""},
		{"none", nil, false, 0, ""},
		{"any case", []string{"X-Kong-Upstream-Status", "Via"}, false, UpstreamStatus | Via, ""},
		{"server tokens", []string{"server_tokens"}, false, Server | Via, ""},
		{"latency tokens", []string{"latency_tokens"}, false, ProxyLatency | UpstreamLatency | ResponseLatency | AdminLatency, ""},
		{"unknown", []string{"via", "x-powered-by"}, false, 0, "headers: invalid entry 'x-powered-by'"},
		{"upstream default", []string{"x-kong-request-id"}, true, RequestID, ""},
		{"upstream off", []string{"off"}, true, 0, ""},
		{"upstream takes only the request id", []string{"via"}, true, 0, "headers_upstream: invalid entry 'via'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.tokens, tt.upstream)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got %v, want error %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %b, %v; want %b", got, err, tt.want)
			}
		})
	}
}
