package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// dbNow reads the database clock.
func dbNow(t *testing.T, s *Store) time.Time {
	t.Helper()
	var now time.Time
	if err := s.pool.QueryRow(context.Background(), "SELECT now()").Scan(&now); err != nil {
		t.Fatalf("read database clock: %v", err)
	}
	return now
}

// ageRows moves column of the rows matching where (with arg) back by age on
// the database clock, as if they were written that long ago.
func ageRows(t *testing.T, s *Store, table, column string, age time.Duration, where string, arg any) {
	t.Helper()
	query := "UPDATE " + table + " SET " + column + " = now() - make_interval(secs => $1) WHERE " + where
	if _, err := s.pool.Exec(context.Background(), query, age.Seconds(), arg); err != nil {
		t.Fatalf("age %s: %v", table, err)
	}
}

func mustRegister(t *testing.T, s *Store, names ...string) {
	t.Helper()
	for _, name := range names {
		n := NodeRecord{Name: name, ClusterAddr: "127.0.0.2:7946"}
		if err := s.RegisterNode(context.Background(), n); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
	}
}

func nodeNames(t *testing.T, s *Store) []string {
	t.Helper()
	nodes, err := s.Nodes(context.Background())
	if err != nil {
		t.Fatalf("nodes: %v", err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	return names
}

func findNode(t *testing.T, s *Store, name string) NodeRecord {
	t.Helper()
	nodes, err := s.Nodes(context.Background())
	if err != nil {
		t.Fatalf("nodes: %v", err)
	}
	for _, n := range nodes {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("got no node %q in %+v, want one", name, nodes)
	return NodeRecord{}
}

func TestRegisterNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	full := NodeRecord{Name: "b", ClusterAddr: "127.0.0.2:7946", ProxyAddr: "127.0.0.2:8000",
		AdminAddr: "127.0.0.2:8001", Hostname: "host-b", Version: "0.1.0",
		// Ignored: the database clock sets both.
		StartedAt: time.Unix(0, 0), LastSeen: time.Unix(0, 0)}
	restarted := full
	restarted.ClusterAddr, restarted.Version = "127.0.0.3:7946", "0.2.0"
	steps := []struct {
		name  string
		node  NodeRecord
		want  NodeRecord // StartedAt and LastSeen checked against the database clock
		names []string
	}{
		{"every field", full, full, []string{"b"}},
		{"defaults", NodeRecord{Name: "a", ClusterAddr: "127.0.0.4:7946"},
			NodeRecord{Name: "a", ClusterAddr: "127.0.0.4:7946"}, []string{"a", "b"}},
		{"restart replaces", restarted, restarted, []string{"a", "b"}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			before := dbNow(t, s)
			if err := s.RegisterNode(ctx, step.node); err != nil {
				t.Fatalf("register: %v", err)
			}
			after := dbNow(t, s)
			if got := nodeNames(t, s); !slices.Equal(got, step.names) {
				t.Fatalf("got nodes %v, want %v", got, step.names)
			}
			got := findNode(t, s, step.node.Name)
			for _, ts := range []time.Time{got.StartedAt, got.LastSeen} {
				if ts.Before(before) || ts.After(after) {
					t.Fatalf("got times %v, %v, want both in [%v, %v]", got.StartedAt, got.LastSeen, before, after)
				}
			}
			got.StartedAt, got.LastSeen = step.want.StartedAt, step.want.LastSeen
			if got != step.want {
				t.Fatalf("got %+v, want %+v", got, step.want)
			}
		})
	}
	t.Run("empty name", func(t *testing.T) {
		if err := s.RegisterNode(ctx, NodeRecord{ClusterAddr: "x"}); err == nil {
			t.Fatal("got nil error, want one")
		}
	})
}

func TestTouchNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	mustRegister(t, s, "a")
	ageRows(t, s, "nodes", "last_seen", time.Hour, "name = $2", "a")
	started := findNode(t, s, "a").StartedAt
	cases := []struct {
		name    string
		node    string
		wantErr error
		names   []string
	}{
		{"registered", "a", nil, []string{"a"}},
		{"never registered", "ghost", ErrNotFound, []string{"a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := dbNow(t, s)
			if err := s.TouchNode(ctx, tc.node); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if got := nodeNames(t, s); !slices.Equal(got, tc.names) {
				t.Fatalf("got nodes %v, want %v", got, tc.names)
			}
			if tc.wantErr != nil {
				return
			}
			got := findNode(t, s, tc.node)
			if got.LastSeen.Before(before) || !got.StartedAt.Equal(started) {
				t.Fatalf("got last seen %v, started %v, want last seen from %v, started %v",
					got.LastSeen, got.StartedAt, before, started)
			}
		})
	}
	t.Run("purged", func(t *testing.T) {
		if err := s.DeleteNode(ctx, "a"); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if err := s.TouchNode(ctx, "a"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
		if got := nodeNames(t, s); len(got) != 0 {
			t.Fatalf("got nodes %v, want none: touch must not re-register", got)
		}
	})
}

func TestDeleteNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	mustRegister(t, s, "a", "b")
	steps := []struct {
		name  string
		node  string
		names []string
	}{
		{"registered", "a", []string{"b"}},
		{"already deleted", "a", []string{"b"}},
		{"never registered", "ghost", []string{"b"}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if err := s.DeleteNode(ctx, step.node); err != nil {
				t.Fatalf("delete: got %v, want nil", err)
			}
			if got := nodeNames(t, s); !slices.Equal(got, step.names) {
				t.Fatalf("got nodes %v, want %v", got, step.names)
			}
		})
	}
}

func TestPurgeNodes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	mustRegister(t, s, "day", "fresh", "hour")
	ageRows(t, s, "nodes", "last_seen", 25*time.Hour, "name = $2", "day")
	ageRows(t, s, "nodes", "last_seen", time.Hour, "name = $2", "hour")
	steps := []struct {
		name       string
		notSeenFor time.Duration
		wantErr    bool
		wantCount  int64
		names      []string
	}{
		{"negative", -time.Minute, true, 0, []string{"day", "fresh", "hour"}},
		{"nothing that old", 48 * time.Hour, false, 0, []string{"day", "fresh", "hour"}},
		{"a day", 24 * time.Hour, false, 1, []string{"fresh", "hour"}},
		{"half an hour", 30 * time.Minute, false, 1, []string{"fresh"}},
		{"fractional seconds", 1500 * time.Millisecond, false, 0, []string{"fresh"}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			n, err := s.PurgeNodes(ctx, step.notSeenFor)
			if (err != nil) != step.wantErr || n != step.wantCount {
				t.Fatalf("got %d, %v, want %d and an error: %v", n, err, step.wantCount, step.wantErr)
			}
			if got := nodeNames(t, s); !slices.Equal(got, step.names) {
				t.Fatalf("got nodes %v, want %v", got, step.names)
			}
		})
	}
}

func TestPurgeEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	old := mustChange(t, s, Services, serviceRow("old"))
	week := mustChange(t, s, Services, serviceRow("week"))
	fresh := mustChange(t, s, Services, serviceRow("fresh"))
	ageRows(t, s, "cluster_events", "at", 30*24*time.Hour, "id = $2", old.EventID)
	ageRows(t, s, "cluster_events", "at", 7*24*time.Hour, "id = $2", week.EventID)
	steps := []struct {
		name      string
		olderThan time.Duration
		wantErr   bool
		wantCount int64
		wantIDs   []int64
	}{
		{"negative", -time.Hour, true, 0, eventIDs([]Change{old, week, fresh})},
		{"nothing that old", 60 * 24 * time.Hour, false, 0, eventIDs([]Change{old, week, fresh})},
		{"two weeks", 14 * 24 * time.Hour, false, 1, eventIDs([]Change{week, fresh})},
		{"one day", 24 * time.Hour, false, 1, eventIDs([]Change{fresh})},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			n, err := s.PurgeEvents(ctx, step.olderThan)
			if (err != nil) != step.wantErr || n != step.wantCount {
				t.Fatalf("got %d, %v, want %d and an error: %v", n, err, step.wantCount, step.wantErr)
			}
			events, err := s.EventsSince(ctx, 0, 0)
			if err != nil {
				t.Fatalf("events: %v", err)
			}
			var got []int64
			for _, e := range events {
				got = append(got, e.ID)
			}
			if !slices.Equal(got, step.wantIDs) {
				t.Fatalf("got event ids %v, want %v", got, step.wantIDs)
			}
		})
	}
	// Purging events leaves the entities alone.
	if rows, err := s.All(ctx, Services); err != nil || len(rows) != 3 {
		t.Fatalf("got %d services, %v, want 3", len(rows), err)
	}
}
