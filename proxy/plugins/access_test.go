package plugins

import (
	"encoding/base64"
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
)

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

const bobID = "5f1e4a0c-0000-4000-8000-000000000b0b"

// TestBasicAuth follows kong/plugins/basic-auth/access.lua (3.9): the
// password checked against its stored salted hash, Proxy-Authorization
// tried first, 401 "Unauthorized" with Basic realm, X-Credential-Identifier
// is the username, hide_credentials drops the header upstream.
func TestBasicAuth(t *testing.T) {
	h := newHarness(t)
	h.consumer(aliceID, "alice", "")
	h.env.Index.Put(entity.BasicAuthCredential{Credential: cred(aliceKey, aliceID), Username: "al",
		Password: entity.HashBasicAuthPassword("s3cr:et", aliceID)})
	h.plugin(`{"name":"basic-auth","route":{"id":"` + routeID + `"},"config":{"hide_credentials":true}}`)
	tests := []struct {
		name    string
		headers []string
		status  int
	}{
		{"no header", nil, 401},
		{"good password", []string{"Authorization: " + basicHeader("al", "s3cr:et")}, 200},
		{"lower-case scheme", []string{"Authorization: basic " + base64.StdEncoding.EncodeToString([]byte("al:s3cr:et"))}, 200},
		{"proxy-authorization", []string{"Proxy-Authorization: " + basicHeader("al", "s3cr:et")}, 200},
		{"wrong password", []string{"Authorization: " + basicHeader("al", "nope")}, 401},
		{"unknown user", []string{"Authorization: " + basicHeader("bo", "s3cr:et")}, 401},
		{"not base64", []string{"Authorization: Basic !!!"}, 401},
		{"no colon", []string{"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("al"))}, 401},
		{"the stored hash as password", []string{"Authorization: " + basicHeader("al", entity.HashBasicAuthPassword("s3cr:et", aliceID))}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do("GET", "/r", "", tt.headers...)
			if resp.status != tt.status {
				t.Fatalf("got %d %s, want %d", resp.status, resp.body, tt.status)
			}
			up, _ := h.last()
			if tt.status == 401 {
				if kongMessage(resp.body) != "Unauthorized" || resp.header.Get("WWW-Authenticate") != `Basic realm="service"` {
					t.Errorf("got %q with WWW-Authenticate %q, want Unauthorized, Basic realm=\"service\"", resp.body, resp.header.Get("WWW-Authenticate"))
				}
				return
			}
			if got := up.Header.Get("X-Credential-Identifier"); got != "al" {
				t.Errorf("got X-Credential-Identifier %q, want al", got)
			}
			if got := up.Header.Get("Authorization") + up.Header.Get("Proxy-Authorization"); got != "" {
				t.Errorf("got credentials upstream %q, want them hidden", got)
			}
		})
	}
}

// TestACL follows kong/plugins/acl/handler.lua (3.9): after key-auth, a
// consumer passes by its groups (allow or deny), X-Consumer-Groups goes
// upstream, others get 403 "You cannot consume this service"; without an
// authenticated consumer the answer is 401.
func TestACL(t *testing.T) {
	h := newHarness(t)
	h.consumer(aliceID, "alice", "")
	h.consumer(bobID, "bob", "")
	h.env.Index.Put(entity.KeyAuthCredential{Credential: cred(aliceKey, aliceID), Key: "k-alice"})
	h.env.Index.Put(entity.KeyAuthCredential{Credential: cred(secondKey, bobID), Key: "k-bob"})
	h.env.Index.Put(entity.ACL{Credential: cred("5f1e4a0c-0000-4000-8000-0000000ac101", aliceID), Group: "gold"})
	h.env.Index.Put(entity.ACL{Credential: cred("5f1e4a0c-0000-4000-8000-0000000ac102", aliceID), Group: "admin"})
	h.plugin(`{"name":"key-auth","service":{"id":"` + serviceID + `"}}`)
	h.plugin(`{"name":"acl","route":{"id":"` + routeID + `"},"config":{"allow":["gold"]}}`)
	h.plugin(`{"name":"acl","route":{"id":"` + route2ID + `"},"config":{"deny":["gold"]}}`)
	tests := []struct {
		name, target, key string
		status            int
		message, groups   string
	}{
		{"allowed group", "/r", "k-alice", 200, "", "admin, gold"},
		{"no groups: allow list", "/r", "k-bob", 403, msgCannotConsume, ""},
		{"denied group", "/r2", "k-alice", 403, msgCannotConsume, ""},
		{"no groups: deny list", "/r2", "k-bob", 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do("GET", tt.target, "", "apikey: "+tt.key, "X-Consumer-Groups: forged")
			if resp.status != tt.status {
				t.Fatalf("got %d %s, want %d", resp.status, resp.body, tt.status)
			}
			if tt.status != 200 {
				if got := kongMessage(resp.body); got != tt.message {
					t.Errorf("got message %q, want %q", got, tt.message)
				}
				return
			}
			up, _ := h.last()
			if tt.groups != "" {
				if got := up.Header.Get("X-Consumer-Groups"); got != tt.groups {
					t.Errorf("got X-Consumer-Groups %q, want %q", got, tt.groups)
				}
			}
		})
	}
	t.Run("a group added later counts", func(t *testing.T) {
		h.env.Index.Put(entity.ACL{Credential: cred("5f1e4a0c-0000-4000-8000-0000000ac103", bobID), Group: "gold"})
		if resp := h.do("GET", "/r", "", "apikey: k-bob"); resp.status != 200 {
			t.Errorf("got %d, want 200", resp.status)
		}
	})
}

// TestACLWithoutConsumer: Kong answers 401 with the default message when
// no authentication plugin ran.
func TestACLWithoutConsumer(t *testing.T) {
	h := newHarness(t)
	h.plugin(`{"name":"acl","config":{"allow":["gold"]}}`)
	if resp := h.do("GET", "/r", ""); resp.status != 401 || kongMessage(resp.body) != "Unauthorized" {
		t.Errorf("got %d %s, want 401 Unauthorized", resp.status, resp.body)
	}
}

// TestIPRestriction follows kong/plugins/ip-restriction/handler.lua (3.9):
// deny first, then allow; 403 "IP address not allowed: <ip>" unless
// status and message are configured.
func TestIPRestriction(t *testing.T) {
	h := newHarness(t)
	h.plugin(`{"name":"ip-restriction","route":{"id":"` + routeID + `"},"config":{"allow":["10.0.0.0/8"]}}`)
	h.plugin(`{"name":"ip-restriction","route":{"id":"` + route2ID + `"},"config":{"allow":["127.0.0.0/8"],"deny":["127.0.0.1"],"status":451,"message":"go away"}}`)
	tests := []struct {
		target  string
		status  int
		message string
	}{
		{"/r", 403, "IP address not allowed: 127.0.0.1"},
		{"/r2", 451, "go away"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			resp := h.do("GET", tt.target, "")
			if resp.status != tt.status || kongMessage(resp.body) != tt.message {
				t.Errorf("got %d %s, want %d %q", resp.status, resp.body, tt.status, tt.message)
			}
		})
	}
	t.Run("allowed", func(t *testing.T) {
		h.plugins = h.plugins[:0]
		h.plugin(`{"name":"ip-restriction","config":{"allow":["127.0.0.0/8", "::1"]}}`)
		if resp := h.do("GET", "/r", ""); resp.status != 200 {
			t.Errorf("got %d, want 200", resp.status)
		}
	})
}
