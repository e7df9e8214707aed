package plugins

import (
	"crypto/tls"
	"io"
	"net/http"
	"testing"

	"golang.org/x/net/http2"

	"github.com/grapevine-gw/grapevine/entity"
)

// TestPluginsOverHTTP2: an HTTP/2 request runs the same plugin chain as
// an HTTP/1.1 one: key-auth refuses a request without a key with Kong's
// 401 (kong/plugins/key-auth/handler.lua) and passes a keyed one with
// the consumer's headers upstream.
func TestPluginsOverHTTP2(t *testing.T) {
	h := newHarnessOn(t, "127.0.0.1:0 ssl http2")
	h.consumer(aliceID, "alice", "a-1")
	h.env.Index.Put(entity.KeyAuthCredential{Credential: cred(aliceKey, aliceID), Key: "k-alice"})
	h.plugin(`{"name":"key-auth","route":{"id":"` + routeID + `"}}`)
	client := &http.Client{Transport: &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test certificate
	get := func(key string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", "https://"+h.srv.Addr().String()+"/r", nil)
		if key != "" {
			req.Header.Set("apikey", key)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	t.Run("no key", func(t *testing.T) {
		resp, body := get("")
		if resp.ProtoMajor != 2 || resp.StatusCode != 401 || kongMessage(body) != "No API key found in request" || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("got HTTP/%d %d %q, want HTTP/2 401 %q with WWW-Authenticate", resp.ProtoMajor, resp.StatusCode, body, "No API key found in request")
		}
	})
	t.Run("key", func(t *testing.T) {
		resp, _ := get("k-alice")
		seen, ok := h.last()
		if resp.StatusCode != 200 || !ok || seen.Header.Get("X-Consumer-Username") != "alice" {
			t.Fatalf("got %d, upstream X-Consumer-Username %q; want 200, alice", resp.StatusCode, seen.Header.Get("X-Consumer-Username"))
		}
	})
}
