package plugins

import (
	"strings"
	"testing"
)

// TestCORS follows kong/plugins/cors/handler.lua (3.9): a preflight is
// answered by the gateway (200, nothing upstream) with the allow headers;
// other answers get Access-Control-Allow-Origin for a matching origin
// (a regex entry compared with the origin's host), Vary: Origin,
// credentials and exposed headers.
func TestCORS(t *testing.T) {
	h := newHarness(t)
	h.plugin(`{"name":"cors","route":{"id":"` + routeID + `"},"config":{"origins":["http://a.test","(.*)\\.b\\.test"],
		"exposed_headers":["X-Out"],"credentials":true,"max_age":600,"methods":["GET","POST"]}}`)
	h.plugin(`{"name":"cors","route":{"id":"` + route2ID + `"},"config":{}}`)
	tests := []struct {
		name, method, target string
		headers              []string
		upstream             bool
		want                 map[string]string
	}{
		{"preflight", "OPTIONS", "/r", []string{"Origin: http://a.test", "Access-Control-Request-Method: POST", "Access-Control-Request-Headers: X-In"}, false,
			map[string]string{"Access-Control-Allow-Origin": "http://a.test", "Access-Control-Allow-Methods": "GET,POST",
				"Access-Control-Allow-Headers": "X-In", "Access-Control-Max-Age": "600", "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}},
		{"regex origin by host", "GET", "/r", []string{"Origin: https://x.b.test:8443"}, true,
			map[string]string{"Access-Control-Allow-Origin": "https://x.b.test:8443", "Access-Control-Expose-Headers": "X-Out", "Vary": "Origin"}},
		{"default port dropped", "GET", "/r", []string{"Origin: http://a.test:80"}, true,
			map[string]string{"Access-Control-Allow-Origin": "http://a.test"}},
		{"other origin", "GET", "/r", []string{"Origin: http://evil.test"}, true,
			map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Credentials": "true"}},
		{"OPTIONS without request method goes upstream", "OPTIONS", "/r", []string{"Origin: http://a.test"}, true,
			map[string]string{"Access-Control-Allow-Origin": "http://a.test"}},
		{"any origin", "GET", "/r2", []string{"Origin: http://x.test"}, true,
			map[string]string{"Access-Control-Allow-Origin": "*", "Vary": ""}},
		{"any origin preflight", "OPTIONS", "/r2", []string{"Origin: http://x.test", "Access-Control-Request-Method: GET"}, false,
			map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(tt.method, tt.target, "", tt.headers...)
			if resp.status != 200 {
				t.Fatalf("got %d, want 200", resp.status)
			}
			if _, reached := h.last(); reached != tt.upstream {
				t.Errorf("got upstream reached %v, want %v", reached, tt.upstream)
			}
			for name, want := range tt.want {
				if got := strings.Join(resp.header.Values(name), ","); got != want {
					t.Errorf("got %s %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestCorrelationID follows kong/plugins/correlation-id/handler.lua
// (3.9): a request without the header gets one upstream, a request with
// one keeps it, and echo_downstream returns it to the client.
func TestCorrelationID(t *testing.T) {
	h := newHarness(t)
	h.plugin(`{"name":"correlation-id","route":{"id":"` + routeID + `"},"config":{"echo_downstream":true}}`)
	h.plugin(`{"name":"correlation-id","route":{"id":"` + route2ID + `"},"config":{"header_name":"X-Cid","generator":"uuid"}}`)

	resp := h.do("GET", "/r", "")
	up, _ := h.last()
	id := up.Header.Get("Kong-Request-Id")
	if !strings.HasPrefix(id, processUUID+"#") || resp.header.Get("Kong-Request-Id") != id {
		t.Errorf("got upstream %q and client %q, want one uuid#counter id echoed", id, resp.header.Get("Kong-Request-Id"))
	}
	h.do("GET", "/r", "", "Kong-Request-ID: mine")
	if up, _ := h.last(); up.Header.Get("Kong-Request-Id") != "mine" {
		t.Errorf("got %q, want the client's id kept", up.Header.Get("Kong-Request-Id"))
	}
	resp = h.do("GET", "/r2", "")
	if up, _ := h.last(); len(up.Header.Get("X-Cid")) != 36 || resp.header.Get("X-Cid") != "" {
		t.Errorf("got upstream X-Cid %q, client %q; want a uuid upstream only", up.Header.Get("X-Cid"), resp.header.Get("X-Cid"))
	}
}

// TestRequestSizeLimiting follows kong/plugins/request-size-limiting/
// handler.lua (3.9): 413 "Request size limit exceeded" over the limit,
// by declared length or by the body read; 411 when a length is required.
func TestRequestSizeLimiting(t *testing.T) {
	h := newHarness(t)
	h.plugin(`{"name":"request-size-limiting","route":{"id":"` + routeID + `"},"config":{"allowed_payload_size":10,"size_unit":"bytes"}}`)
	h.plugin(`{"name":"request-size-limiting","route":{"id":"` + route2ID + `"},"config":{"allowed_payload_size":1,"require_content_length":true}}`)
	tests := []struct {
		name, target, body string
		status             int
		message            string
	}{
		{"under", "/r", "0123456789", 200, ""},
		{"over", "/r", "0123456789a", 413, "Request size limit exceeded"},
		{"no body, length required", "/r2", "", 411, "A valid Content-Length header is required"},
		{"megabytes", "/r2", "small", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := "POST"
			if tt.body == "" {
				method = "GET"
			}
			resp := h.do(method, tt.target, tt.body)
			if resp.status != tt.status || tt.message != "" && kongMessage(resp.body) != tt.message {
				t.Errorf("got %d %s, want %d %q", resp.status, resp.body, tt.status, tt.message)
			}
		})
	}
}
