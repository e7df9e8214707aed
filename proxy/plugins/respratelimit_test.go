package plugins

import (
	"net/http"
	"testing"
)

// TestResponseRateLimitingLocal follows kong/plugins/response-ratelimiting
// (access.lua, header_filter.lua, log.lua): the upstream spends named
// limits with X-Kong-Limit; the client sees each limit's remaining count
// (from access) and each period's limit and remaining count after this
// answer; the header itself is not passed on; an answer that spends a
// limit already used up becomes a 429 with the upstream's headers and no
// body, and is not counted.
func TestResponseRateLimitingLocal(t *testing.T) {
	h := newHarness(t)
	h.answer = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Kong-Limit", "video=2, unknown=7, image = 1, broken, x=y=z")
		w.Header().Set("X-Upstream", "yes")
		w.Write([]byte("payload"))
	}
	h.plugin(`{"name":"response-ratelimiting","route":{"id":"` + routeID + `"},
		"config":{"limits":{"video":{"day":5,"year":10},"image":{"day":100}}}}`)
	steps := []struct {
		status int
		want   map[string]string
	}{
		{200, map[string]string{"X-RateLimit-Remaining-video": "5", "X-RateLimit-Limit-video-day": "5", "X-RateLimit-Remaining-video-day": "3",
			"X-RateLimit-Limit-video-year": "10", "X-RateLimit-Remaining-video-year": "8", "X-RateLimit-Remaining-image": "100",
			"X-RateLimit-Limit-image-day": "100", "X-RateLimit-Remaining-image-day": "99"}},
		{200, map[string]string{"X-RateLimit-Remaining-video": "3", "X-RateLimit-Remaining-video-day": "1", "X-RateLimit-Remaining-image-day": "98"}},
		// 1 left of the day: the answer spends 2, is let through, and
		// leaves the count past the limit.
		{200, map[string]string{"X-RateLimit-Remaining-video": "1", "X-RateLimit-Remaining-video-day": "0"}},
		{429, map[string]string{"X-RateLimit-Remaining-video": "-1", "X-RateLimit-Remaining-video-day": "0", "X-Upstream": "yes",
			"X-RateLimit-Remaining-image-day": "96"}},
		// The refused answer counted nothing, of either limit.
		{429, map[string]string{"X-RateLimit-Remaining-video": "-1", "X-RateLimit-Remaining-image-day": "96"}},
	}
	for i, step := range steps {
		resp := h.do("GET", "/r", "")
		if resp.status != step.status {
			t.Fatalf("request %d: got %d %q, want %d", i+1, resp.status, resp.body, step.status)
		}
		for name, want := range step.want {
			if got := resp.header.Get(name); got != want {
				t.Errorf("request %d: got %s %q, want %q", i+1, name, got, want)
			}
		}
		if got := resp.header.Get("X-Kong-Limit"); got != "" {
			t.Errorf("request %d: got X-Kong-Limit %q passed to the client, want it removed", i+1, got)
		}
		if step.status == 429 && resp.body != "" {
			t.Errorf("request %d: got body %q with the 429, want none", i+1, resp.body)
		}
	}
}

// TestResponseRateLimitingBlockOnFirstViolation: with
// block_on_first_violation a limit with exactly nothing left refuses the
// request before it reaches the upstream, naming the limit (access.lua);
// hide_client_headers leaves out the per-period headers only.
func TestResponseRateLimitingBlockOnFirstViolation(t *testing.T) {
	h := newHarness(t)
	h.answer = func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Kong-Limit", "video=1") }
	h.plugin(`{"name":"response-ratelimiting","route":{"id":"` + routeID + `"},
		"config":{"block_on_first_violation":true,"hide_client_headers":true,"limits":{"video":{"day":2}}}}`)
	for i := 1; i <= 3; i++ {
		resp := h.do("GET", "/r", "")
		_, reached := h.last()
		if i <= 2 {
			if resp.status != 200 || !reached {
				t.Fatalf("request %d: got %d (upstream reached %v), want 200 through", i, resp.status, reached)
			}
			if resp.header.Get("X-RateLimit-Limit-video-day") != "" || resp.header.Get("X-RateLimit-Remaining-video") == "" {
				t.Errorf("request %d: got headers %v, want X-RateLimit-Remaining-video only", i, resp.header)
			}
			continue
		}
		if resp.status != 429 || kongMessage(resp.body) != "API rate limit exceeded for 'video'" || reached {
			t.Fatalf("request %d: got %d %s (upstream reached %v), want 429 API rate limit exceeded for 'video'", i, resp.status, resp.body, reached)
		}
	}
}

// TestResponseRateLimitingCountsPerClient: limit_by ip (and consumer
// falling back to it) keeps one count per client; answers without the
// header spend nothing.
func TestResponseRateLimitingCountsPerClient(t *testing.T) {
	h := newHarness(t)
	spend := true
	h.answer = func(w http.ResponseWriter, r *http.Request) {
		if spend {
			w.Header().Set("X-Kong-Limit", "video=1")
		}
	}
	h.plugin(`{"name":"response-ratelimiting","route":{"id":"` + routeID + `"},"config":{"limits":{"video":{"day":3}}}}`)
	h.do("GET", "/r", "")
	spend = false
	h.do("GET", "/r", "")
	if got := h.do("GET", "/r", "").header.Get("X-RateLimit-Remaining-video"); got != "2" {
		t.Errorf("got %q left after one spending answer and two without the header, want 2", got)
	}
	if got := h.do("GET", "/r2", "").header.Get("X-RateLimit-Remaining-video"); got != "" {
		t.Errorf("got %q on another route, want no header", got)
	}
}
