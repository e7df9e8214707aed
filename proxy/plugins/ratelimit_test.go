package plugins

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
)

// TestRateLimitingLocal follows kong/plugins/rate-limiting/handler.lua
// (3.9): X-RateLimit-Limit/Remaining-<Period> for every configured period,
// RateLimit-Limit/Remaining/Reset for the tightest, and once a limit is
// used up Kong's 429 "API rate limit exceeded" with Retry-After, nothing
// upstream. A day window keeps the test clear of window boundaries.
func TestRateLimitingLocal(t *testing.T) {
	h := newHarness(t)
	h.plugin(`{"name":"rate-limiting","route":{"id":"` + routeID + `"},"config":{"day":3,"year":100}}`)
	for i := 1; i <= 4; i++ {
		resp := h.do("GET", "/r", "")
		_, reached := h.last()
		if i <= 3 {
			if resp.status != 200 || !reached {
				t.Fatalf("request %d: got %d (upstream reached %v), want 200 through", i, resp.status, reached)
			}
			want := map[string]string{"X-RateLimit-Limit-Day": "3", "X-RateLimit-Remaining-Day": strconv.Itoa(3 - i),
				"X-RateLimit-Limit-Year": "100", "X-RateLimit-Remaining-Year": strconv.Itoa(100 - i),
				"RateLimit-Limit": "3", "RateLimit-Remaining": strconv.Itoa(3 - i)}
			for name, w := range want {
				if got := resp.header.Get(name); got != w {
					t.Errorf("request %d: got %s %q, want %q", i, name, got, w)
				}
			}
			reset, _ := strconv.Atoi(resp.header.Get("RateLimit-Reset"))
			if reset < 1 || reset > 86400 {
				t.Errorf("request %d: got RateLimit-Reset %q, want 1..86400", i, resp.header.Get("RateLimit-Reset"))
			}
			continue
		}
		if resp.status != 429 || kongMessage(resp.body) != "API rate limit exceeded" || reached {
			t.Fatalf("request %d: got %d %s (upstream reached %v), want 429 API rate limit exceeded", i, resp.status, resp.body, reached)
		}
		if resp.header.Get("Retry-After") != resp.header.Get("RateLimit-Reset") || resp.header.Get("X-RateLimit-Remaining-Day") != "0" {
			t.Errorf("got Retry-After %q, RateLimit-Reset %q, remaining %q; want equal, and 0 left",
				resp.header.Get("Retry-After"), resp.header.Get("RateLimit-Reset"), resp.header.Get("X-RateLimit-Remaining-Day"))
		}
	}
}

// TestRateLimitingExactUnderConcurrency: parallel clients against a
// limit of L get exactly L through.
func TestRateLimitingExactUnderConcurrency(t *testing.T) {
	const limit, clients, each = 25, 8, 10
	h := newHarness(t)
	h.plugin(`{"name":"rate-limiting","config":{"day":` + strconv.Itoa(limit) + `,"hide_client_headers":true}}`)
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				resp := h.do("GET", "/r", "")
				mu.Lock()
				codes[resp.status]++
				mu.Unlock()
				if resp.header.Get("RateLimit-Limit") != "" {
					t.Errorf("got RateLimit-Limit with hide_client_headers, want none")
				}
			}
		}()
	}
	wg.Wait()
	if codes[200] != limit || codes[429] != clients*each-limit {
		t.Errorf("got %v, want %d × 200 and the rest 429", codes, limit)
	}
}

// TestRateLimitingLimitBy counts per consumer, header or path as Kong's
// get_identifier picks, falling back to the client's address.
func TestRateLimitingLimitBy(t *testing.T) {
	h := newHarness(t)
	h.consumer(aliceID, "alice", "")
	h.consumer(bobID, "bob", "")
	h.env.Index.Put(entity.KeyAuthCredential{Credential: cred(aliceKey, aliceID), Key: "k-alice"})
	h.env.Index.Put(entity.KeyAuthCredential{Credential: cred(secondKey, bobID), Key: "k-bob"})
	h.plugin(`{"name":"key-auth","route":{"id":"` + routeID + `"}}`)
	h.plugin(`{"name":"rate-limiting","route":{"id":"` + routeID + `"},"config":{"day":1}}`)
	h.plugin(`{"name":"rate-limiting","route":{"id":"` + route2ID + `"},"config":{"day":1,"limit_by":"header","header_name":"X-Tenant"}}`)
	tests := []struct {
		name, target string
		headers      []string
		status       int
	}{
		{"alice first", "/r", []string{"apikey: k-alice"}, 200},
		{"alice again", "/r", []string{"apikey: k-alice"}, 429},
		{"bob has his own", "/r", []string{"apikey: k-bob"}, 200},
		{"tenant a", "/r2", []string{"X-Tenant: a"}, 200},
		{"tenant b", "/r2", []string{"X-Tenant: b"}, 200},
		{"tenant a again", "/r2", []string{"X-Tenant: a"}, 429},
		{"no header: by address", "/r2", nil, 200},
		{"no header again", "/r2", nil, 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp := h.do("GET", tt.target, "", tt.headers...); resp.status != tt.status {
				t.Errorf("got %d, want %d", resp.status, tt.status)
			}
		})
	}
}

// TestPeriodStarts checks the windows start at Kong's UTC calendar
// boundaries (kong/tools/timestamp.lua).
func TestPeriodStarts(t *testing.T) {
	now := time.Date(2024, 3, 15, 13, 45, 30, 500e6, time.FixedZone("x", 3600))
	got := periodStarts(now)
	want := [numPeriods]time.Time{
		time.Date(2024, 3, 15, 12, 45, 30, 0, time.UTC), time.Date(2024, 3, 15, 12, 45, 0, 0, time.UTC),
		time.Date(2024, 3, 15, 12, 0, 0, 0, time.UTC), time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for p := range want {
		if got[p] != want[p].UnixMilli() {
			t.Errorf("%s: got %v, want %v", periodNames[p], time.UnixMilli(got[p]).UTC(), want[p])
		}
	}
}
