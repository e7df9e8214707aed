package store

import (
	"context"
	"fmt"
	"time"
)

// RateWindow is one period's current window for TakeRateLimit.
type RateWindow struct {
	Period string    // "second" … "year", as Kong names them
	Start  time.Time // the window's start
	End    time.Time // when the window is over: the row's ttl
	Limit  float64   // the plugin's limit for the period
}

// zeroUUID stands for an unscoped plugin's service or route, as in Kong's
// rate-limiting policies (EMPTY_UUID).
const zeroUUID = "00000000-0000-0000-0000-000000000000"

// TakeRateLimit counts one request of identifier against windows in the
// ratelimiting_metrics table, all or nothing: it returns each window's
// count before this request, and when any window's limit was used up
// already (limit - count <= 0) the request is counted in none of them.
// serviceID and routeID are the plugin's scope ("" for none). Every node
// calling it for the same key sees one count, so a limit holds across the
// cluster; a call is one round trip (grapevine_ratelimit_take, migration
// 007).
func (s *Store) TakeRateLimit(ctx context.Context, identifier, serviceID, routeID string, windows []RateWindow) ([]int64, error) {
	periods := make([]string, len(windows))
	starts := make([]time.Time, len(windows))
	ends := make([]time.Time, len(windows))
	limits := make([]float64, len(windows))
	for i, w := range windows {
		periods[i], starts[i], ends[i], limits[i] = w.Period, w.Start, w.End, w.Limit
	}
	var counts []int64
	err := s.pool.QueryRow(ctx, "SELECT grapevine_ratelimit_take($1, $2::uuid, $3::uuid, $4, $5, $6, $7)",
		identifier, orZeroUUID(serviceID), orZeroUUID(routeID), periods, starts, limits, ends).Scan(&counts)
	if err != nil {
		return nil, fmt.Errorf("take rate limit: %w", classify(err))
	}
	if len(counts) != len(windows) {
		return nil, fmt.Errorf("take rate limit: got %d counts for %d windows", len(counts), len(windows))
	}
	return counts, nil
}

// PurgeRateLimits deletes the counters whose windows are over by the
// database clock, and returns how many it deleted.
func (s *Store) PurgeRateLimits(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM ratelimiting_metrics WHERE ttl < now()")
	if err != nil {
		return 0, fmt.Errorf("purge rate limits: %w", classify(err))
	}
	return tag.RowsAffected(), nil
}

func orZeroUUID(id string) string {
	if id == "" {
		return zeroUUID
	}
	return id
}
