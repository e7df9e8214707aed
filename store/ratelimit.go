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

// ResponseRateLimitUsage is response-ratelimiting's count of the limit
// name for identifier in each window (0 where there is none), from the
// response_ratelimiting_metrics table (migration 009) in one query.
// serviceID and routeID are the plugin's scope ("" for none).
func (s *Store) ResponseRateLimitUsage(ctx context.Context, identifier, serviceID, routeID, name string, windows []RateWindow) ([]int64, error) {
	periods, starts, _ := responseWindows(name, windows)
	rows, err := s.pool.Query(ctx, `SELECT w.i, coalesce(m.value, 0)
		  FROM unnest($4::text[], $5::timestamptz[]) WITH ORDINALITY AS w(period, period_date, i)
		  LEFT JOIN response_ratelimiting_metrics m
		    ON m.identifier = $1 AND m.service_id = $2::uuid AND m.route_id = $3::uuid
		   AND m.period = w.period AND m.period_date = w.period_date`,
		identifier, orZeroUUID(serviceID), orZeroUUID(routeID), periods, starts)
	if err != nil {
		return nil, fmt.Errorf("read response rate limit: %w", classify(err))
	}
	counts := make([]int64, len(windows))
	for rows.Next() {
		var i, v int64
		if err := rows.Scan(&i, &v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read response rate limit: %w", classify(err))
		}
		if i >= 1 && int(i) <= len(counts) {
			counts[i-1] = v
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read response rate limit: %w", classify(err))
	}
	return counts, nil
}

// IncrementResponseRateLimit adds by to the limit name's count for
// identifier in every window, in one statement.
func (s *Store) IncrementResponseRateLimit(ctx context.Context, identifier, serviceID, routeID, name string, windows []RateWindow, by int64) error {
	periods, starts, ends := responseWindows(name, windows)
	_, err := s.pool.Exec(ctx, `INSERT INTO response_ratelimiting_metrics AS m
		       (identifier, period, period_date, service_id, route_id, value, ttl)
		SELECT $1, w.period, w.period_date, $2::uuid, $3::uuid, $6, w.ttl
		  FROM unnest($4::text[], $5::timestamptz[], $7::timestamptz[]) AS w(period, period_date, ttl)
		ON CONFLICT (identifier, period, period_date, service_id, route_id)
		DO UPDATE SET value = coalesce(m.value, 0) + EXCLUDED.value`,
		identifier, orZeroUUID(serviceID), orZeroUUID(routeID), periods, starts, by, ends)
	if err != nil {
		return fmt.Errorf("increment response rate limit: %w", classify(err))
	}
	return nil
}

// responseWindows are windows as the table keys them: the period column
// is "<limit name>_<period>", as Kong's cluster policy writes it.
func responseWindows(name string, windows []RateWindow) (periods []string, starts, ends []time.Time) {
	periods = make([]string, len(windows))
	starts = make([]time.Time, len(windows))
	ends = make([]time.Time, len(windows))
	for i, w := range windows {
		periods[i], starts[i], ends[i] = name+"_"+w.Period, w.Start, w.End
	}
	return periods, starts, ends
}

// PurgeRateLimits deletes the counters (of both rate-limiting plugins)
// whose windows are over by the database clock, and returns how many it
// deleted.
func (s *Store) PurgeRateLimits(ctx context.Context) (int64, error) {
	var n int64
	for _, table := range []string{"ratelimiting_metrics", "response_ratelimiting_metrics"} {
		tag, err := s.pool.Exec(ctx, "DELETE FROM "+table+" WHERE ttl < now()")
		if err != nil {
			return n, fmt.Errorf("purge rate limits: %w", classify(err))
		}
		n += tag.RowsAffected()
	}
	return n, nil
}

func orZeroUUID(id string) string {
	if id == "" {
		return zeroUUID
	}
	return id
}
