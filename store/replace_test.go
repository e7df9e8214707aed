package store

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
)

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

	dangling := routeRow("bad", uuid.NewString())
	_, err = s.UpsertAll(ctx, []TableRows{{Services, []Row{serviceRow("also-fresh")}}, {Routes, []Row{dangling}}})
	var fk *ForeignKeyError
	if !errors.As(err, &fk) || fk.Field != "service" {
		t.Fatalf("got %v, want a ForeignKeyError on service", err)
	}
	if _, err := s.GetByKey(ctx, Services, "also-fresh"); !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v reading the service of the failed import, want ErrNotFound", err)
	}
}
