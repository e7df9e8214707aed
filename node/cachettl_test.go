package node

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/store"
)

// TestCachedKeyKeepsItsExpiry: a key-auth row's cached document names the
// Unix time it expires, and reading the cache gives back that expiry and
// "ttl" as the seconds left then; a version 1 cache gives none.
func TestCachedKeyKeepsItsExpiry(t *testing.T) {
	expires := time.Now().Add(time.Hour).Truncate(time.Second)
	read := store.WithTTL(json.RawMessage(`{"id":"k1","key":"short"}`), &expires, time.Now())
	row := store.Row{ID: "k1", Doc: read, Expires: &expires}
	doc := cachedDoc("keyauth_credentials", row)
	for _, tc := range []struct {
		name    string
		version int
		want    *time.Time
	}{
		{"this format", cacheFormatVersion, &expires},
		{"format 1", 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cachedRowOf("keyauth_credentials", cachedRow{ID: "k1", Doc: doc}, tc.version)
			if (got.Expires == nil) != (tc.want == nil) || (tc.want != nil && !got.Expires.Equal(*tc.want)) {
				t.Fatalf("got expiry %v, want %v", got.Expires, tc.want)
			}
			var m map[string]any
			if err := json.Unmarshal(got.Doc, &m); err != nil || m["key"] != "short" {
				t.Fatalf("got document %s (%v), want the key's", got.Doc, err)
			}
			if tc.want != nil {
				if left, _ := m["ttl"].(float64); left < 3500 || left > 3600 {
					t.Errorf("got ttl %v, want the seconds left, about 3600", m["ttl"])
				}
			}
		})
	}
	t.Run("never expires", func(t *testing.T) {
		forever := store.Row{ID: "k2", Doc: store.WithTTL(json.RawMessage(`{"id":"k2"}`), nil, time.Now())}
		got := cachedRowOf("keyauth_credentials", cachedRow{ID: "k2", Doc: cachedDoc("keyauth_credentials", forever)}, cacheFormatVersion)
		if got.Expires != nil {
			t.Errorf("got expiry %v, want none", got.Expires)
		}
	})
}
