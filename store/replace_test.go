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
