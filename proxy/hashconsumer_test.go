package proxy

import (
	"strconv"
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// hash_on consumer without an authenticated consumer hashes the
// credential's own id, not its consumer's (kong/runloop/balancer/init.lua
// get_value_to_hash: authenticated_consumer.id or
// authenticated_credential.id): a request with only credential X lands
// where the consumer X does.
func TestBalancedHashOnConsumerFallsBackToTheCredentialID(t *testing.T) {
	targets := []*target{startTarget(t, "127.0.43.13"), startTarget(t, "127.0.43.14"), startTarget(t, "127.0.43.15")}
	u := testUpstreamEntity("backend.test", "consistent-hashing", "", func(u *entity.Upstream) {
		u.HashOn, u.HashFallback = "consumer", "none"
	})
	auth := PluginInstance{ID: "auth", Name: "auth", Priority: 1000}
	auth.Hooks[PhaseAccess] = func(x pdk.Exchange) {
		if id, _ := x.Header("X-Consumer"); len(id) > 0 {
			x.Authenticate(&pdk.Consumer{ID: string(id)}, nil)
		}
		if id, _ := x.Header("X-Credential"); len(id) > 0 {
			x.Authenticate(nil, &pdk.Credential{ID: string(id), ConsumerID: "owner-" + string(id)})
		}
	}
	s := authBalancedProxy(t, u, targets, auth)
	for i := range 6 {
		id := "id-" + strconv.Itoa(i)
		_, _, byConsumer := send(t, s, "GET", "/b", map[string]string{"X-Consumer": id})
		_, _, byCredential := send(t, s, "GET", "/b", map[string]string{"X-Credential": id})
		if byCredential != byConsumer {
			t.Errorf("credential %s: got %s, want %s (where consumer %s goes)", id, byCredential, byConsumer, id)
		}
	}
}
