package store

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestTakeRateLimit checks the cluster policy's counters: a request is
// counted in every window, the count before it comes back, and once one
// window is used up a request counts nowhere (the table's key is Kong 3.9's,
// kong/plugins/rate-limiting/daos.lua: identifier, period, period_date,
// service_id, route_id).
func TestTakeRateLimit(t *testing.T) {
	t.Parallel()
	s := bootstrapped(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Hour)
	windows := []RateWindow{
		{Period: "hour", Start: now, End: now.Add(time.Hour), Limit: 2},
		{Period: "day", Start: now.Truncate(24 * time.Hour), End: now.Add(24 * time.Hour), Limit: 10},
	}
	want := [][]int64{{0, 0}, {1, 1}, {2, 2}, {2, 2}}
	for i, w := range want {
		got, err := s.TakeRateLimit(ctx, "1.2.3.4", "", "", windows)
		if err != nil {
			t.Fatalf("take %d: %v", i, err)
		}
		if !slices.Equal(got, w) {
			t.Errorf("take %d: got counts %v, want %v", i, got, w)
		}
	}
	other, err := s.TakeRateLimit(ctx, "1.2.3.4", "", "7e1a4e0b-6a43-4a5e-9f3c-000000000001", windows)
	if err != nil || !slices.Equal(other, []int64{0, 0}) {
		t.Errorf("another route's plugin: got %v, %v, want its own counts [0 0]", other, err)
	}
}

// TestTakeRateLimitConcurrent: parallel takes against a limit of L find
// exactly L windows with room.
func TestTakeRateLimitConcurrent(t *testing.T) {
	t.Parallel()
	s := bootstrapped(t)
	const limit, workers, each = 15, 6, 6
	now := time.Now().Truncate(time.Hour)
	windows := []RateWindow{{Period: "hour", Start: now, End: now.Add(time.Hour), Limit: limit}}
	var mu sync.Mutex
	passed := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				counts, err := s.TakeRateLimit(context.Background(), "k", "", "", windows)
				if err != nil {
					t.Error(err)
					return
				}
				if counts[0] < limit {
					mu.Lock()
					passed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if passed != limit {
		t.Errorf("got %d takes with room, want %d", passed, limit)
	}
}

// TestPurgeRateLimits drops the rows whose window is over and keeps the
// others.
func TestPurgeRateLimits(t *testing.T) {
	t.Parallel()
	s := bootstrapped(t)
	ctx := context.Background()
	past := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	now := time.Now().Truncate(time.Hour)
	for _, start := range []time.Time{past, now} {
		if _, err := s.TakeRateLimit(ctx, "k", "", "", []RateWindow{{Period: "hour", Start: start, End: start.Add(time.Hour), Limit: 5}}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PurgeRateLimits(ctx)
	if err != nil || n != 1 {
		t.Errorf("got %d purged, %v; want 1", n, err)
	}
}

// TestResponseRateLimit checks response-ratelimiting's cluster counters
// (kong/plugins/response-ratelimiting/policies/cluster.lua): increments
// add up per limit name, period and scope, a window never written reads
// 0, and housekeeping drops rows whose window is over.
func TestResponseRateLimit(t *testing.T) {
	t.Parallel()
	s := bootstrapped(t)
	ctx := context.Background()
	minute := time.Now().UTC().Truncate(time.Minute)
	hour := time.Now().UTC().Truncate(time.Hour)
	windows := []RateWindow{{Period: "minute", Start: minute, End: minute.Add(time.Minute)}, {Period: "hour", Start: hour, End: hour.Add(time.Hour)}}
	for _, by := range []int64{2, 3} {
		if err := s.IncrementResponseRateLimit(ctx, "1.2.3.4", "", "", "video", windows, by); err != nil {
			t.Fatal(err)
		}
	}
	route := "7e1a4e0b-6a43-4a5e-9f3c-000000000001"
	tests := []struct {
		name, identifier, route, limit string
		windows                        []RateWindow
		want                           []int64
	}{
		{"both windows", "1.2.3.4", "", "video", windows, []int64{5, 5}},
		{"one window", "1.2.3.4", "", "video", windows[1:], []int64{5}},
		{"another limit", "1.2.3.4", "", "image", windows, []int64{0, 0}},
		{"another client", "5.6.7.8", "", "video", windows, []int64{0, 0}},
		{"another scope", "1.2.3.4", route, "video", windows, []int64{0, 0}},
		{"a later window", "1.2.3.4", "", "video", []RateWindow{{Period: "minute", Start: minute.Add(time.Minute)}}, []int64{0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ResponseRateLimitUsage(ctx, tc.identifier, "", tc.route, tc.limit, tc.windows)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	past := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	if err := s.IncrementResponseRateLimit(ctx, "k", "", "", "video", []RateWindow{{Period: "hour", Start: past, End: past.Add(time.Hour)}}, 1); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeRateLimits(ctx); err != nil || n != 1 {
		t.Errorf("got %d purged, %v; want the 1 row of a past window", n, err)
	}
}
