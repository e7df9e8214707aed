package store

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"
)

// TestReplaceAll: a whole replacement commits every row with one
// cluster_events row, and a failing one changes nothing.
func TestReplaceAll(t *testing.T) {
	ctx := context.Background()
	s := bootstrapped(t)
	old := mustInsert(t, s, Services, serviceRow("old"))
	before := countEvents(t, s)

	svc := serviceRow("svc")
	route := routeRow("r", svc.ID)
	c, err := s.ReplaceAll(ctx, []TableRows{{Services, []Row{svc}}, {Routes, []Row{route}}})
	if err != nil {
		t.Fatalf("replace: %v", err)
	}
	if c.Table != ReloadAllTable || c.EventID == 0 {
		t.Errorf("got change %+v, want one on %q with an event", c, ReloadAllTable)
	}
	if got := countEvents(t, s) - before; got != 1 {
		t.Errorf("got %d new events, want 1", got)
	}
	services, _ := s.All(ctx, Services)
	if got := ids(services); !slices.Equal(got, []string{svc.ID}) {
		t.Errorf("got services %v, want only %s (not the old %s)", got, svc.ID, old.ID)
	}

	t.Run("dangling reference changes nothing", func(t *testing.T) {
		bad := routeRow("bad", uuid.NewString())
		_, err := s.ReplaceAll(ctx, []TableRows{{Routes, []Row{bad}}})
		var fk *ForeignKeyError
		if !errors.As(err, &fk) || fk.Field != "service" {
			t.Fatalf("got %v, want a ForeignKeyError on service", err)
		}
		routes, _ := s.All(ctx, Routes)
		if got := ids(routes); !slices.Equal(got, []string{route.ID}) {
			t.Errorf("got routes %v, want %s kept", got, route.ID)
		}
	})
	t.Run("duplicate name names the field", func(t *testing.T) {
		a, b := serviceRow("same"), serviceRow("same")
		_, err := s.ReplaceAll(ctx, []TableRows{{Services, []Row{a, b}}})
		var ue *UniqueError
		if !errors.As(err, &ue) || ue.Field != "name" || ue.Value != "same" {
			t.Fatalf("got %v, want a UniqueError on name 'same'", err)
		}
	})
}

// TestUpsertAll: an import keeps what the file does not name, replaces
// what it does, records one event, and a conflict changes nothing.
func TestUpsertAll(t *testing.T) {
	ctx := context.Background()
	s := bootstrapped(t)
	kept := mustInsert(t, s, Services, serviceRow("kept"))
	replaced := mustInsert(t, s, Services, serviceRow("before"))
	before := countEvents(t, s)

	replaced.Key = ptr("after")
	added := serviceRow("added")
	if _, err := s.UpsertAll(ctx, []TableRows{{Services, []Row{replaced, added}}}); err != nil {
		t.Fatalf("upsert all: %v", err)
	}
	if got := countEvents(t, s) - before; got != 1 {
		t.Errorf("got %d new events, want 1", got)
	}
	if _, err := s.GetByKey(ctx, Services, "after"); err != nil {
		t.Errorf("got %v reading the replaced service by its new name, want it", err)
	}
	if _, err := s.Get(ctx, Services, kept.ID); err != nil {
		t.Errorf("got %v reading the service the import did not name, want it kept", err)
	}

	clash := serviceRow("kept") // another id with a name in use
	fresh := serviceRow("fresh")
	_, err := s.UpsertAll(ctx, []TableRows{{Services, []Row{fresh, clash}}})
	var ue *UniqueError
	if !errors.As(err, &ue) || ue.Field != "name" || ue.Value != "kept" {
		t.Fatalf("got %v, want a UniqueError on name 'kept'", err)
	}
	if _, err := s.GetByKey(ctx, Services, "fresh"); !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v reading the service of the failed import, want ErrNotFound", err)
	}
}
