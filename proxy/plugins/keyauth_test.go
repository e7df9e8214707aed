package plugins

import (
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
)

const (
	aliceID   = "5f1e4a0c-0000-4000-8000-00000000a11c"
	anonID    = "5f1e4a0c-0000-4000-8000-00000000a404"
	aliceKey  = "5f1e4a0c-0000-4000-8000-0000000c0001"
	secondKey = "5f1e4a0c-0000-4000-8000-0000000c0002"
)

// TestKeyAuth follows kong/plugins/key-auth/handler.lua (3.9): where keys
// are looked for, its 401 messages and WWW-Authenticate challenge, the
// consumer headers upstream (set, or cleared so client copies never
// pass), hide_credentials, run_on_preflight and the anonymous fallback.
func TestKeyAuth(t *testing.T) {
	h := newHarness(t)
	h.consumer(aliceID, "alice", "a-1")
	h.consumer(anonID, "anon", "")
	h.env.Index.Put(entity.KeyAuthCredential{Credential: cred(aliceKey, aliceID), Key: "k-alice"})
	h.plugin(`{"name":"key-auth","route":{"id":"` + routeID + `"},"config":{"key_names":["apikey","x-key"],"hide_credentials":true,"key_in_body":true,"run_on_preflight":false,"realm":"gw"}}`)
	h.plugin(`{"name":"key-auth","route":{"id":"` + route2ID + `"},"config":{"anonymous":"anon"}}`)

	tests := []struct {
		name       string
		method     string
		target     string
		body       string
		headers    []string
		status     int
		message    string
		challenge  string
		upstream   map[string]string // headers the upstream must see ("" = absent)
		upstreamAt string            // URI the upstream must see, when set
		upBody     string
	}{
		{name: "no key", method: "GET", target: "/r", status: 401, message: "No API key found in request", challenge: `Key realm="gw"`},
		{name: "unknown key", method: "GET", target: "/r", headers: []string{"apikey: nope"}, status: 401, message: "Unauthorized", challenge: `Key realm="gw"`},
		{name: "empty key", method: "GET", target: "/r?apikey=", status: 401, message: "No API key found in request"},
		{name: "duplicate header", method: "GET", target: "/r", headers: []string{"apikey: k-alice", "apikey: k-alice"}, status: 401, message: "Duplicate API key found"},
		{name: "duplicate query", method: "GET", target: "/r?apikey=a&apikey=b", status: 401, message: "Duplicate API key found"},
		{name: "header key, forged consumer headers replaced", method: "GET", target: "/r",
			headers: []string{"apikey: k-alice", "X-Consumer-ID: forged", "X-Anonymous-Consumer: true", "X-Consumer-Username: mallory"},
			status:  200,
			upstream: map[string]string{"X-Consumer-Id": aliceID, "X-Consumer-Username": "alice", "X-Consumer-Custom-Id": "a-1",
				"X-Credential-Identifier": aliceKey, "X-Anonymous-Consumer": "", "Apikey": ""}},
		{name: "second key name, any case", method: "GET", target: "/r", headers: []string{"X-KEY: k-alice"}, status: 200,
			upstream: map[string]string{"X-Key": "", "X-Consumer-Username": "alice"}},
		{name: "query key hidden", method: "GET", target: "/r/p?a=1&apikey=k-alice&b=2", status: 200, upstreamAt: "/p?a=1&b=2"},
		{name: "form body key hidden", method: "POST", target: "/r", body: "apikey=k-alice&x=1",
			headers: []string{"Content-Type: application/x-www-form-urlencoded"}, status: 200, upBody: "x=1"},
		{name: "json body key hidden", method: "POST", target: "/r", body: `{"apikey":"k-alice","x":1}`,
			headers: []string{"Content-Type: application/json"}, status: 200, upBody: `{"x":1}`},
		{name: "preflight skipped", method: "OPTIONS", target: "/r", status: 200},
		{name: "anonymous on failure", method: "GET", target: "/r2", headers: []string{"X-Consumer-ID: forged"}, status: 200,
			upstream: map[string]string{"X-Consumer-Id": anonID, "X-Consumer-Username": "anon", "X-Anonymous-Consumer": "true", "X-Credential-Identifier": ""}},
		{name: "anonymous route, valid key", method: "GET", target: "/r2?apikey=k-alice", status: 200,
			upstream: map[string]string{"X-Consumer-Id": aliceID, "X-Anonymous-Consumer": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(tt.method, tt.target, tt.body, tt.headers...)
			if resp.status != tt.status {
				t.Fatalf("got %d %s, want %d", resp.status, resp.body, tt.status)
			}
			up, reached := h.last()
			if tt.status != 200 {
				if got := kongMessage(resp.body); got != tt.message {
					t.Errorf("got message %q, want %q", got, tt.message)
				}
				want := tt.challenge
				if want == "" {
					want = `Key realm="gw"`
				}
				if got := resp.header.Get("WWW-Authenticate"); got != want {
					t.Errorf("got WWW-Authenticate %q, want %q", got, want)
				}
				if reached {
					t.Errorf("got a request upstream, want none")
				}
				return
			}
			for name, want := range tt.upstream {
				if got := up.Header.Get(name); got != want {
					t.Errorf("got upstream %s %q, want %q", name, got, want)
				}
				if n := len(up.Header.Values(name)); n > 1 {
					t.Errorf("got %d upstream %s headers, want one", n, name)
				}
			}
			if tt.upstreamAt != "" && up.URI != tt.upstreamAt {
				t.Errorf("got upstream URI %q, want %q", up.URI, tt.upstreamAt)
			}
			if tt.upBody != "" && up.Body != tt.upBody {
				t.Errorf("got upstream body %q, want %q", up.Body, tt.upBody)
			}
		})
	}

	t.Run("missing anonymous consumer is Kong's 500", func(t *testing.T) {
		h.env.Index.Remove("consumers", anonID)
		if resp := h.do("GET", "/r2", ""); resp.status != 500 || kongMessage(resp.body) != "An unexpected error occurred" {
			t.Errorf("got %d %s, want 500 An unexpected error occurred", resp.status, resp.body)
		}
	})
	t.Run("a deleted key stops working", func(t *testing.T) {
		h.env.Index.Remove("keyauth_credentials", aliceKey)
		if resp := h.do("GET", "/r", "", "apikey: k-alice"); resp.status != 401 {
			t.Errorf("got %d, want 401", resp.status)
		}
	})
}
