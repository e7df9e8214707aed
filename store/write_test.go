package store

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/google/uuid"
)

func TestInsertGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	svc := mustInsert(t, s, Services, serviceRow("s1", "a", "b"))
	anon := mustInsert(t, s, Services, serviceRow(""))
	route := mustInsert(t, s, Routes, routeRow("r1", svc.ID))
	orphan := mustInsert(t, s, Routes, routeRow("", ""))

	cases := []struct {
		name    string
		get     func() (Row, error)
		want    Row
		wantErr error
	}{
		{"service by id", func() (Row, error) { return s.Get(ctx, Services, svc.ID) }, svc, nil},
		{"service by key", func() (Row, error) { return s.GetByKey(ctx, Services, "s1") }, svc, nil},
		{"service without name", func() (Row, error) { return s.Get(ctx, Services, anon.ID) }, anon, nil},
		{"route with service", func() (Row, error) { return s.Get(ctx, Routes, route.ID) }, route, nil},
		{"route by key", func() (Row, error) { return s.GetByKey(ctx, Routes, "r1") }, route, nil},
		{"route without service", func() (Row, error) { return s.Get(ctx, Routes, orphan.ID) }, orphan, nil},
		{"missing id", func() (Row, error) { return s.Get(ctx, Services, uuid.NewString()) }, Row{}, ErrNotFound},
		{"id not a uuid", func() (Row, error) { return s.Get(ctx, Services, "s1") }, Row{}, ErrNotFound},
		{"missing key", func() (Row, error) { return s.GetByKey(ctx, Services, "nope") }, Row{}, ErrNotFound},
		{"route id in services", func() (Row, error) { return s.Get(ctx, Services, route.ID) }, Row{}, ErrNotFound},
		{"table without key", func() (Row, error) {
			return s.GetByKey(ctx, Table{Name: "services"}, "s1")
		}, Row{}, ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.get()
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("got error %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil {
				assertRow(t, got, tc.want)
			}
		})
	}
}

func assertRow(t *testing.T, got, want Row) {
	t.Helper()
	if got.ID != want.ID {
		t.Errorf("got id %s, want %s", got.ID, want.ID)
	}
	if (got.Key == nil) != (want.Key == nil) || (got.Key != nil && *got.Key != *want.Key) {
		t.Errorf("got key %v, want %v", got.Key, want.Key)
	}
	if len(got.Foreign) != len(want.Foreign) || got.Foreign["service"] != want.Foreign["service"] {
		t.Errorf("got foreign %v, want %v", got.Foreign, want.Foreign)
	}
	if !slices.Equal(got.Tags, want.Tags) || (got.Tags == nil) != (want.Tags == nil) {
		t.Errorf("got tags %#v, want %#v", got.Tags, want.Tags)
	}
	if got.CreatedAt != want.CreatedAt || got.UpdatedAt != want.UpdatedAt {
		t.Errorf("got times %d/%d, want %d/%d", got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
	}
	sameJSON(t, got.Doc, want.Doc)
}

func TestWriteErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	svc := mustInsert(t, s, Services, serviceRow("s1"))
	mustInsert(t, s, Services, serviceRow("s2"))
	route := mustInsert(t, s, Routes, routeRow("r1", svc.ID))
	missing := uuid.NewString()

	renamed := svc
	renamed.Key = ptr("s2")
	dupID := serviceRow("fresh")
	dupID.ID = svc.ID
	moved := route
	moved.Foreign = map[string]string{"service": missing}

	cases := []struct {
		name  string
		write func() (Change, error)
		check func(t *testing.T, err error)
	}{
		{"insert duplicate name", func() (Change, error) { return s.Insert(ctx, Services, serviceRow("s1")) },
			wantAs(&UniqueError{Table: "services", Field: "name", Value: "s1"})},
		{"update to a taken name", func() (Change, error) { return s.Update(ctx, Services, renamed) },
			wantAs(&UniqueError{Table: "services", Field: "name", Value: "s2"})},
		{"upsert to a taken name", func() (Change, error) { return s.Upsert(ctx, Services, renamed) },
			wantAs(&UniqueError{Table: "services", Field: "name", Value: "s2"})},
		{"insert duplicate id", func() (Change, error) { return s.Insert(ctx, Services, dupID) },
			wantAs(&PrimaryKeyError{Table: "services", ID: svc.ID})},
		{"insert route of missing service", func() (Change, error) { return s.Insert(ctx, Routes, routeRow("r2", missing)) },
			wantAs(&ForeignKeyError{Table: "routes", Field: "service", RefTable: "services", ID: missing})},
		{"insert route of non-uuid service", func() (Change, error) { return s.Insert(ctx, Routes, routeRow("r2", "s1")) },
			wantAs(&ForeignKeyError{Table: "routes", Field: "service", RefTable: "services", ID: "s1"})},
		{"update route to missing service", func() (Change, error) { return s.Update(ctx, Routes, moved) },
			wantAs(&ForeignKeyError{Table: "routes", Field: "service", RefTable: "services", ID: missing})},
		{"delete referenced service", func() (Change, error) { return s.Delete(ctx, Services, svc.ID) },
			wantAs(&ReferencedError{Table: "services", By: "routes"})},
		{"update missing id", func() (Change, error) { return s.Update(ctx, Services, serviceRow("s9")) },
			wantIs(ErrNotFound)},
		{"insert with unknown foreign field", func() (Change, error) {
			r := serviceRow("s9")
			r.Foreign = map[string]string{"route": route.ID}
			return s.Insert(ctx, Services, r)
		}, wantAny},
		{"insert with bad id", func() (Change, error) {
			r := serviceRow("s9")
			r.ID = "not-a-uuid"
			return s.Insert(ctx, Services, r)
		}, wantAny},
		{"insert without doc", func() (Change, error) {
			r := serviceRow("s9")
			r.Doc = nil
			return s.Insert(ctx, Services, r)
		}, wantAny},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := countEvents(t, s)
			c, err := tc.write()
			tc.check(t, err)
			if c != (Change{}) {
				t.Errorf("got change %+v from a failed write, want none", c)
			}
			if after := countEvents(t, s); after != before {
				t.Errorf("got %d cluster events after a failed write, want %d", after, before)
			}
		})
	}
}

// wantAs checks err holds an error of want's type equal to want.
func wantAs[E error](want E) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var got E
		if !errors.As(err, &got) {
			t.Fatalf("got error %v, want %T", err, want)
		}
		if !reflect.DeepEqual(got, want) { // compares the pointed-to structs
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
}

func wantIs(want error) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("got error %v, want %v", err, want)
		}
	}
}

func wantAny(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("got nil error, want one")
	}
}
