package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
)

// TestWritesRecordEvents checks that each write that changed a row adds
// exactly one cluster_events row, with the id returned in Change.EventID.
func TestWritesRecordEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	svc := serviceRow("s1")
	route := routeRow("r1", svc.ID)
	renamed := svc
	renamed.Key = ptr("s1-renamed")
	upserted := serviceRow("s2")

	steps := []struct {
		name   string
		write  func() (Change, error)
		table  string
		id     string
		wantOp string // "" = no change, no event
	}{
		{"insert service", func() (Change, error) { return s.Insert(ctx, Services, svc) }, "services", svc.ID, OpCreate},
		{"insert route", func() (Change, error) { return s.Insert(ctx, Routes, route) }, "routes", route.ID, OpCreate},
		{"update service", func() (Change, error) { return s.Update(ctx, Services, renamed) }, "services", svc.ID, OpUpdate},
		{"upsert new", func() (Change, error) { return s.Upsert(ctx, Services, upserted) }, "services", upserted.ID, OpCreate},
		{"upsert existing", func() (Change, error) { return s.Upsert(ctx, Services, upserted) }, "services", upserted.ID, OpUpdate},
		{"delete route", func() (Change, error) { return s.Delete(ctx, Routes, route.ID) }, "routes", route.ID, OpDelete},
		{"delete route again", func() (Change, error) { return s.Delete(ctx, Routes, route.ID) }, "routes", route.ID, ""},
		{"delete missing", func() (Change, error) { return s.Delete(ctx, Services, uuid.NewString()) }, "services", "", ""},
		{"delete non-uuid", func() (Change, error) { return s.Delete(ctx, Services, "s1") }, "services", "", ""},
		{"delete service", func() (Change, error) { return s.Delete(ctx, Services, svc.ID) }, "services", svc.ID, OpDelete},
	}
	var last int64
	for _, step := range steps {
		c, err := step.write()
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		events, err := s.EventsSince(ctx, last, 0)
		if err != nil {
			t.Fatalf("%s: events: %v", step.name, err)
		}
		if step.wantOp == "" {
			if c != (Change{}) || len(events) != 0 {
				t.Fatalf("%s: got change %+v and %d events, want none", step.name, c, len(events))
			}
			continue
		}
		want := Change{EventID: c.EventID, Table: step.table, ID: step.id, Op: step.wantOp}
		if c != want || c.EventID <= last {
			t.Fatalf("%s: got change %+v, want %+v with an event id above %d", step.name, c, want, last)
		}
		if len(events) != 1 {
			t.Fatalf("%s: got %d events, want 1", step.name, len(events))
		}
		e := events[0]
		if e.ID != c.EventID || e.Table != step.table || e.EntityID != step.id || e.Op != step.wantOp ||
			e.NodeID != "node-test" || e.At.IsZero() {
			t.Fatalf("%s: got event %+v, want it to match change %+v from node-test", step.name, e, c)
		}
		last = c.EventID
	}
}

func TestEventsSince(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	var changes []Change
	for range 5 {
		c, err := s.Insert(ctx, Services, serviceRow(""))
		if err != nil {
			t.Fatalf("insert: %v", err)
		}
		changes = append(changes, c)
	}
	cases := []struct {
		name    string
		after   int64
		limit   int
		wantIDs []int64
	}{
		{"all", 0, 0, eventIDs(changes)},
		{"limit", 0, 2, eventIDs(changes[:2])},
		{"after second", changes[1].EventID, 10, eventIDs(changes[2:])},
		{"after last", changes[4].EventID, 10, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			events, err := s.EventsSince(ctx, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("events: %v", err)
			}
			var got []int64
			for _, e := range events {
				got = append(got, e.ID)
			}
			if len(got) != len(tc.wantIDs) {
				t.Fatalf("got ids %v, want %v", got, tc.wantIDs)
			}
			for i := range got {
				if got[i] != tc.wantIDs[i] {
					t.Fatalf("got ids %v, want %v", got, tc.wantIDs)
				}
			}
		})
	}
	latest, err := s.LatestEventID(ctx)
	if err != nil || latest != changes[4].EventID {
		t.Fatalf("latest: got %d, %v, want %d", latest, err, changes[4].EventID)
	}
}

func eventIDs(cs []Change) []int64 {
	var out []int64
	for _, c := range cs {
		out = append(out, c.EventID)
	}
	return out
}

func TestInTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	svc := serviceRow("s1")
	route := routeRow("r1", svc.ID)

	t.Run("commits every write and event", func(t *testing.T) {
		changes, err := s.InTx(ctx, func(x *Tx) error {
			if _, err := x.Insert(ctx, Services, svc); err != nil {
				return err
			}
			if _, err := x.Get(ctx, Services, svc.ID); err != nil {
				return err // sees its own write
			}
			_, err := x.Insert(ctx, Routes, route)
			return err
		})
		if err != nil {
			t.Fatalf("in tx: %v", err)
		}
		if len(changes) != 2 || changes[0].ID != svc.ID || changes[1].ID != route.ID ||
			changes[0].EventID >= changes[1].EventID {
			t.Fatalf("got changes %+v, want service then route, ascending event ids", changes)
		}
		if n := countEvents(t, s); n != 2 {
			t.Fatalf("got %d events, want 2", n)
		}
	})
	t.Run("a failing write rolls everything back", func(t *testing.T) {
		other := serviceRow("s2")
		changes, err := s.InTx(ctx, func(x *Tx) error {
			if _, err := x.Insert(ctx, Services, other); err != nil {
				return err
			}
			_, err := x.Insert(ctx, Services, serviceRow("s1")) // duplicate name
			return err
		})
		var unique *UniqueError
		if !errors.As(err, &unique) || changes != nil {
			t.Fatalf("got %v, %+v, want a *UniqueError and no changes", err, changes)
		}
		if _, err := s.Get(ctx, Services, other.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get rolled-back row: got %v, want ErrNotFound", err)
		}
		if n := countEvents(t, s); n != 2 {
			t.Fatalf("got %d events, want still 2", n)
		}
	})
}

// EventsByID answers which of the given ids exist, with their entity: a
// node checks gossip hints with it.
func TestEventsByID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	var changes []Change
	for range 3 {
		c, err := s.Insert(ctx, Services, serviceRow(""))
		if err != nil {
			t.Fatalf("insert: %v", err)
		}
		changes = append(changes, c)
	}
	never := changes[2].EventID + 1000
	cases := []struct {
		name    string
		ids     []int64
		wantIDs []int64
	}{
		{"none asked", nil, nil},
		{"all exist", eventIDs(changes), eventIDs(changes)},
		{"one never committed", []int64{changes[0].EventID, never}, eventIDs(changes[:1])},
		{"only forged", []int64{never, never + 1}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			events, err := s.EventsByID(ctx, tc.ids)
			if err != nil {
				t.Fatalf("events: %v", err)
			}
			var got []int64
			for _, e := range events {
				got = append(got, e.ID)
				if e.Table != Services.Name || e.EntityID == "" {
					t.Errorf("event %d names %s %q, want a service", e.ID, e.Table, e.EntityID)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantIDs) {
				t.Fatalf("got ids %v, want %v", got, tc.wantIDs)
			}
		})
	}
}
