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
