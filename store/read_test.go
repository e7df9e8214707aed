package store

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"sort"
	"testing"

	"github.com/google/uuid"
)

// insertServices adds n services and returns their ids in id order.
func insertServices(t *testing.T, s *Store, n int) []string {
	t.Helper()
	var out []string
	for range n {
		out = append(out, mustInsert(t, s, Services, serviceRow("")).ID)
	}
	sort.Strings(out)
	return out
}

func TestListPageBoundaries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name     string
		rows     int
		size     int
		wantLen  int
		wantNext bool
	}{
		{"empty table", 0, 10, 0, false},
		{"fewer than a page", 3, 10, 3, false},
		{"exactly a page", 10, 10, 10, false},
		{"one more than a page", 11, 10, 10, true},
		{"size one", 2, 1, 1, true},
		{"default size", 101, 0, 100, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := bootstrapped(t)
			want := insertServices(t, s, tc.rows)
			rows, next, err := s.List(ctx, Services, Page{Size: tc.size})
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			if got := ids(rows); !slices.Equal(got, want[:tc.wantLen]) {
				t.Fatalf("got ids %v, want %v", got, want[:tc.wantLen])
			}
			if (next != "") != tc.wantNext {
				t.Fatalf("got next offset %q, want one: %v", next, tc.wantNext)
			}
			if next != "" {
				after, err := decodeOffset(next)
				if err != nil || after != rows[len(rows)-1].ID {
					t.Fatalf("offset decodes to %q, %v, want last id %s", after, err, rows[len(rows)-1].ID)
				}
			}
		})
	}
}

func TestListWalksEveryRowOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	want := insertServices(t, s, 25)
	for _, size := range []int{1, 5, 7, 24, 25, 26, 1000} {
		var got []string
		p := Page{Size: size}
		pages := 0
		for {
			rows, next, err := s.List(ctx, Services, p)
			if err != nil {
				t.Fatalf("size %d: list: %v", size, err)
			}
			got = append(got, ids(rows)...)
			if pages++; next == "" || pages > 100 {
				break
			}
			p.Offset = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("size %d: got %d ids %v, want %d %v", size, len(got), got, len(want), want)
		}
	}
	all, err := s.All(ctx, Services)
	if err != nil || !slices.Equal(ids(all), want) {
		t.Fatalf("all: got %v, %v, want %v", ids(all), err, want)
	}
}

func TestListBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	b64 := base64.RawURLEncoding.EncodeToString
	cases := []struct {
		name    string
		page    Page
		wantErr error
	}{
		{"not base64", Page{Size: 10, Offset: "!!!"}, ErrInvalidOffset},
		{"not JSON", Page{Size: 10, Offset: b64([]byte("hello"))}, ErrInvalidOffset},
		{"object", Page{Size: 10, Offset: b64([]byte(`{"id":"x"}`))}, ErrInvalidOffset},
		{"empty array", Page{Size: 10, Offset: b64([]byte(`[]`))}, ErrInvalidOffset},
		{"two ids", Page{Size: 10, Offset: b64([]byte(`["` + uuid.NewString() + `","` + uuid.NewString() + `"]`))}, ErrInvalidOffset},
		{"not a uuid", Page{Size: 10, Offset: b64([]byte(`["abc"]`))}, ErrInvalidOffset},
		{"size too big", Page{Size: 1001}, nil},
		{"negative size", Page{Size: -1}, nil},
		{"unknown foreign field", Page{Size: 10, ForeignField: "route", ForeignID: uuid.NewString()}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.List(ctx, Services, tc.page)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("got error %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// TestOffsetKongCompat: Kong encodes offsets with the standard alphabet; we
// emit URL-safe ones. Both must decode, padded or not.
func TestOffsetKongCompat(t *testing.T) {
	id := uuid.NewString()
	raw := []byte(`["` + id + `"]`)
	for _, token := range []string{
		encodeOffset(id),
		base64.StdEncoding.EncodeToString(raw),
		base64.RawStdEncoding.EncodeToString(raw),
		base64.URLEncoding.EncodeToString(raw),
	} {
		got, err := decodeOffset(token)
		if err != nil || got != id {
			t.Errorf("decode %q: got %q, %v, want %s", token, got, err, id)
		}
	}
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	s1 := mustInsert(t, s, Services, serviceRow("s1", "a"))
	s2 := mustInsert(t, s, Services, serviceRow("s2", "a", "b"))
	s3 := mustInsert(t, s, Services, serviceRow("s3", "b", "c"))
	mustInsert(t, s, Services, serviceRow("s4"))
	r1 := mustInsert(t, s, Routes, routeRow("r1", s1.ID, "a"))
	r2 := mustInsert(t, s, Routes, routeRow("r2", s1.ID, "b"))
	r3 := mustInsert(t, s, Routes, routeRow("r3", s2.ID, "a"))
	mustInsert(t, s, Routes, routeRow("r4", ""))

	cases := []struct {
		name  string
		table Table
		page  Page
		want  []Row
	}{
		{"all of a", Services, Page{Tags: []string{"a"}}, []Row{s1, s2}},
		{"all of a,b", Services, Page{Tags: []string{"a", "b"}}, []Row{s2}},
		{"any of a/c", Services, Page{Tags: []string{"a", "c"}, AnyTag: true}, []Row{s1, s2, s3}},
		{"all of missing tag", Services, Page{Tags: []string{"zzz"}}, nil},
		{"any with one missing", Services, Page{Tags: []string{"zzz", "c"}, AnyTag: true}, []Row{s3}},
		{"routes of s1", Routes, Page{ForeignField: "service", ForeignID: s1.ID}, []Row{r1, r2}},
		{"routes of s3", Routes, Page{ForeignField: "service", ForeignID: s3.ID}, nil},
		{"routes of non-uuid", Routes, Page{ForeignField: "service", ForeignID: "s1"}, nil},
		{"routes of s1 tagged b", Routes, Page{ForeignField: "service", ForeignID: s1.ID, Tags: []string{"b"}}, []Row{r2}},
		{"routes tagged a", Routes, Page{Tags: []string{"a"}}, []Row{r1, r3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.page.Size = 100
			rows, next, err := s.List(ctx, tc.table, tc.page)
			if err != nil || next != "" {
				t.Fatalf("list: got next %q, error %v, want neither", next, err)
			}
			want := ids(tc.want)
			sort.Strings(want)
			if got := ids(rows); !slices.Equal(got, want) {
				t.Fatalf("got ids %v, want %v", got, want)
			}
		})
	}
}

// TestListFilteredPages walks a tag filter page by page: offsets must hold
// with filters too.
func TestListFilteredPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	var want []string
	for i := range 12 {
		tag := "odd"
		if i%2 == 0 {
			tag = "even"
		}
		r := mustInsert(t, s, Services, serviceRow("", tag))
		if tag == "even" {
			want = append(want, r.ID)
		}
	}
	sort.Strings(want)
	var got []string
	p := Page{Size: 4, Tags: []string{"even"}}
	for {
		rows, next, err := s.List(ctx, Services, p)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		got = append(got, ids(rows)...)
		if next == "" {
			break
		}
		p.Offset = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
