package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/testutil"
	"github.com/rs/zerolog"
)

func TestLogSampler(t *testing.T) {
	l := logSampler{interval: time.Second}
	start := time.Unix(1000, 0)
	steps := []struct {
		key         string
		at          time.Duration
		wantOK      bool
		wantDropped int64
	}{
		{"a", 0, true, 0},
		{"a", 100 * time.Millisecond, false, 0},
		{"b", 200 * time.Millisecond, true, 0}, // keys are apart
		{"a", 900 * time.Millisecond, false, 0},
		{"a", 1100 * time.Millisecond, true, 2},
		{"a", 2200 * time.Millisecond, true, 0},
	}
	for i, s := range steps {
		ok, dropped := l.allow(s.key, start.Add(s.at))
		if ok != s.wantOK || dropped != s.wantDropped {
			t.Errorf("step %d (%s at %v): got %v, %d; want %v, %d", i, s.key, s.at, ok, dropped, s.wantOK, s.wantDropped)
		}
	}
}

// An upstream the proxy cannot reach is an error an operator must see at
// the default log level, once per service per interval, not per request.
func TestUpstreamFailureIsLoggedSampled(t *testing.T) {
	var logs testutil.LogBuffer
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", closedAddr(t), noRetries)},
		[]entity.Route{testRoute(idA, "s1", paths("/"))})
	s := startProxyWith(t, snap, func(c *Config) { c.Logger = zerolog.New(&logs).Level(zerolog.InfoLevel) })
	for range 5 {
		if status, _, _ := send(t, s, "GET", "/", nil); status != 502 {
			t.Fatalf("got %d, want 502", status)
		}
	}
	lines := strings.Count(logs.String(), `"message":"proxy upstream failed"`)
	if lines != 1 || !strings.Contains(logs.String(), `"level":"error"`) {
		t.Fatalf("got %d upstream failure lines in %q, want one at error level", lines, logs.String())
	}
}
