package plugins

import (
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
)

// A key written with a ttl is refused from the moment it expires, before
// any event or sweep, and ForgetExpired frees it (and only it).
func TestIndexKeyExpiry(t *testing.T) {
	ix := NewIndex()
	consumer := &entity.ForeignKey{ID: "c1"}
	key := func(id, k string) entity.KeyAuthCredential {
		return entity.KeyAuthCredential{Credential: entity.Credential{ID: id, Consumer: consumer}, Key: k}
	}
	ix.Replace([]any{
		entity.Consumer{ID: "c1"},
		key("k1", "forever"),
		Expiring{Value: key("k2", "past"), Expires: time.Now().Add(-time.Second)},
		Expiring{Value: key("k3", "future"), Expires: time.Now().Add(time.Hour)},
	})
	cases := []struct {
		key  string
		want bool
	}{{"forever", true}, {"past", false}, {"future", true}}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			if cred, _ := ix.Key([]byte(tc.key)); (cred != nil) != tc.want {
				t.Errorf("got %v, want found %v", cred, tc.want)
			}
		})
	}
	if n := ix.ForgetExpired(time.Now()); n != 1 {
		t.Errorf("ForgetExpired: got %d, want 1", n)
	}
	if got := ix.Len(); got != 3 {
		t.Errorf("after ForgetExpired: got %d entries, want 3 (a consumer, two keys)", got)
	}
	// A key written again without a ttl no longer expires.
	ix.Put(key("k3", "future"))
	if n := ix.ForgetExpired(time.Now().Add(2 * time.Hour)); n != 0 {
		t.Errorf("ForgetExpired after the ttl was dropped: got %d, want 0", n)
	}
}
