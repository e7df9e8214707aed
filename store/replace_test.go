package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/google/uuid"

	"github.com/grapevine-gw/grapevine/entity"
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

// RowsOf encodes on every core but gives each document's row in its place,
// and a document that cannot be encoded fails the whole.
func TestRowsOf(t *testing.T) {
	t.Parallel()
	k := entity.MustKind("services")
	docs := make([]map[string]any, 1000)
	for i := range docs {
		docs[i] = map[string]any{"id": uuid.NewString(), "name": fmt.Sprintf("s%d", i), "tags": []any{"t"}, "created_at": int64(i)}
	}
	rows, err := RowsOf(k, docs)
	if err != nil {
		t.Fatal(err)
	}
	for i, doc := range docs {
		want, err := RowOf(k, doc)
		if err != nil {
			t.Fatal(err)
		}
		if rows[i].ID != want.ID || *rows[i].Key != *want.Key || string(rows[i].Doc) != string(want.Doc) || rows[i].CreatedAt != want.CreatedAt {
			t.Fatalf("row %d: got %+v, want %+v", i, rows[i], want)
		}
	}
	docs[700]["port"] = math.NaN()
	if _, err := RowsOf(k, docs); err == nil {
		t.Errorf("got no error for a document holding NaN, want one")
	}
}

// Into empty tables an import copies the rows in directly: they read back
// as given, and a clash within the file or a dangling reference is still
// refused by name, with nothing kept.
func TestUpsertAllIntoEmptyTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	svc := serviceRow("first", "a-tag")
	route := routeRow("r", svc.ID)
	if _, err := s.UpsertAll(ctx, []TableRows{{Services, []Row{svc}}, {Routes, []Row{route}}}); err != nil {
		t.Fatalf("import into empty tables: %v", err)
	}
	got, err := s.Get(ctx, Routes, route.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, got.Doc, route.Doc)
	if got.Foreign["service"] != svc.ID {
		t.Errorf("got route service %q, want %q", got.Foreign["service"], svc.ID)
	}
	if page, _, err := s.List(ctx, Services, Page{Tags: []string{"a-tag"}}); err != nil || len(page) != 1 {
		t.Errorf("got %d services tagged a-tag (%v), want 1", len(page), err)
	}

	t.Run("a name twice in the file", func(t *testing.T) {
		s := bootstrapped(t)
		_, err := s.UpsertAll(ctx, []TableRows{{Services, []Row{serviceRow("twice"), serviceRow("twice")}}})
		var ue *UniqueError
		if !errors.As(err, &ue) || ue.Field != "name" || ue.Value != "twice" {
			t.Fatalf("got %v, want a UniqueError on name 'twice'", err)
		}
	})
	t.Run("a dangling reference", func(t *testing.T) {
		s := bootstrapped(t)
		_, err := s.UpsertAll(ctx, []TableRows{{Services, []Row{serviceRow("kept-out")}}, {Routes, []Row{routeRow("bad", uuid.NewString())}}})
		var fk *ForeignKeyError
		if !errors.As(err, &fk) || fk.Field != "service" {
			t.Fatalf("got %v, want a ForeignKeyError on service", err)
		}
		if _, err := s.GetByKey(ctx, Services, "kept-out"); !errors.Is(err, ErrNotFound) {
			t.Errorf("got %v reading the service of the failed import, want ErrNotFound", err)
		}
	})
}
