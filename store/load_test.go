package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grapevine-gw/grapevine/entity"
)

func TestLoadConfigEmpty(t *testing.T) {
	t.Parallel()
	s := bootstrapped(t)
	load, err := s.LoadConfig(context.Background(), []Table{Services, Routes}, 100)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if load.MaxEventID != 0 || len(load.RecentEvents) != 0 {
		t.Fatalf("got max event id %d and %d events, want 0 and none", load.MaxEventID, len(load.RecentEvents))
	}
	for _, name := range []string{"services", "routes"} {
		rows, ok := load.Rows[name]
		if !ok || len(rows) != 0 {
			t.Fatalf("got %s rows %v (present: %v), want present and empty", name, rows, ok)
		}
	}
}

func TestLoadConfigWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	svc := serviceRow("s1")
	route := routeRow("r1", svc.ID)
	first := []Change{mustChange(t, s, Services, svc), mustChange(t, s, Routes, route)}
	var changes []Change
	for range 3 {
		changes = append(changes, mustChange(t, s, Services, serviceRow("")))
	}
	last := changes[2].EventID
	cases := []struct {
		name    string
		window  int64
		wantIDs []int64
	}{
		{"zero", 0, nil},
		{"negative", -5, nil},
		{"one", 1, []int64{last}},
		{"three", 3, eventIDs(changes)},
		{"wider than the log", 1 << 40, eventIDs(append(first, changes...))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			load, err := s.LoadConfig(ctx, []Table{Services, Routes}, tc.window)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if load.MaxEventID != last {
				t.Fatalf("got max event id %d, want %d", load.MaxEventID, last)
			}
			if got := loadedEventIDs(load); !slices.Equal(got, tc.wantIDs) {
				t.Fatalf("got recent event ids %v, want %v", got, tc.wantIDs)
			}
			if got := len(load.Rows["services"]); got != 4 {
				t.Fatalf("got %d services, want 4", got)
			}
			if got := ids(load.Rows["routes"]); !slices.Equal(got, []string{route.ID}) {
				t.Fatalf("got routes %v, want [%s]", got, route.ID)
			}
			if got := ids(load.Rows["services"]); !slices.IsSorted(got) {
				t.Fatalf("got services %v, want them in id order", got)
			}
		})
	}
}

// TestLoadConfigInFlight: a transaction that took a lower event id but has
// not committed is invisible to LoadConfig, rows and event alike, while a
// later, committed one is seen: the caller finds the gap below MaxEventID.
func TestLoadConfigInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	pendingRow := serviceRow("pending")
	pending, commit := openWrite(t, s, pendingRow)
	committedRow := serviceRow("committed")
	committed, err := s.Insert(ctx, Services, committedRow)
	if err != nil {
		t.Fatalf("insert committed: %v", err)
	}
	if pending.EventID >= committed.EventID {
		t.Fatalf("got pending event %d, committed %d, want pending lower", pending.EventID, committed.EventID)
	}

	steps := []struct {
		name     string
		commit   bool
		wantRows []string
		wantIDs  []int64
	}{
		{"while in flight", false, []string{committedRow.ID}, []int64{committed.EventID}},
		{"after commit", true, []string{committedRow.ID, pendingRow.ID},
			[]int64{pending.EventID, committed.EventID}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if step.commit {
				if err := commit(); err != nil {
					t.Fatalf("commit open write: %v", err)
				}
			}
			load, err := s.LoadConfig(ctx, []Table{Services}, 10)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if load.MaxEventID != committed.EventID {
				t.Fatalf("got max event id %d, want %d", load.MaxEventID, committed.EventID)
			}
			if got := loadedEventIDs(load); !slices.Equal(got, step.wantIDs) {
				t.Fatalf("got recent event ids %v, want %v", got, step.wantIDs)
			}
			want := slices.Sorted(slices.Values(step.wantRows))
			if got := ids(load.Rows["services"]); !slices.Equal(got, want) {
				t.Fatalf("got services %v, want %v", got, want)
			}
		})
	}
}

// openWrite inserts r in a transaction that stays open until commit is
// called (or the test ends) and returns the change it made.
func openWrite(t *testing.T, s *Store, r Row) (Change, func() error) {
	t.Helper()
	ctx := context.Background()
	insertedCh := make(chan Change, 1)
	releaseCh := make(chan struct{})
	doneCh := make(chan error, 1)
	go func() {
		_, err := s.InTx(ctx, func(x *Tx) error {
			c, err := x.Insert(ctx, Services, r)
			if err != nil {
				return err
			}
			insertedCh <- c
			<-releaseCh
			return nil
		})
		doneCh <- err
	}()
	var once sync.Once
	var commitErr error
	commit := func() error {
		once.Do(func() {
			close(releaseCh)
			commitErr = <-doneCh
		})
		return commitErr
	}
	t.Cleanup(func() { _ = commit() })
	select {
	case c := <-insertedCh:
		return c, commit
	case err := <-doneCh:
		t.Fatalf("open write: %v", err)
		return Change{}, nil
	}
}

// TestLoadConfigConsistent loads while writers commit: with a window wider
// than the log, the events and the rows come from the same snapshot, so
// every loaded service has its create event and every event its service.
func TestLoadConfigConsistent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	const writers, perWriter = 4, 25
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWriter {
				if _, err := s.Insert(ctx, Services, serviceRow("")); err != nil {
					t.Errorf("insert: %v", err)
					return
				}
			}
		}()
	}
	doneCh := make(chan struct{})
	go func() { wg.Wait(); close(doneCh) }()
	var rows []string
	for loads := 0; ; loads++ {
		// Seen before the load, the writers' end means this load is the last.
		finished := isClosed(doneCh)
		load, err := s.LoadConfig(ctx, []Table{Services}, 1<<40)
		if err != nil {
			t.Fatalf("load %d: %v", loads, err)
		}
		rows = ids(load.Rows["services"])
		if events := eventEntities(load); !slices.Equal(rows, events) {
			t.Fatalf("load %d: got %d services and %d events for different ids, want the same",
				loads, len(rows), len(events))
		}
		if finished {
			break
		}
	}
	if len(rows) != writers*perWriter {
		t.Fatalf("got %d services in the last load, want %d", len(rows), writers*perWriter)
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func mustChange(t *testing.T, s *Store, tbl Table, r Row) Change {
	t.Helper()
	c, err := s.Insert(context.Background(), tbl, r)
	if err != nil {
		t.Fatalf("insert %s %s: %v", tbl.Name, r.ID, err)
	}
	return c
}

func loadedEventIDs(load ConfigLoad) []int64 {
	var out []int64
	for _, e := range load.RecentEvents {
		out = append(out, e.ID)
	}
	return out
}

// eventEntities returns the entity ids of load's events, sorted.
func eventEntities(load ConfigLoad) []string {
	out := []string{}
	for _, e := range load.RecentEvents {
		out = append(out, e.EntityID)
	}
	sort.Strings(out)
	return out
}

// A table larger than a page loads whole, in id order, through the pages
// (a million consumers cannot be read in one bounded call).
func TestLoadConfigBoundedPages(t *testing.T) {
	t.Parallel()
	s := bootstrapped(t)
	rows := make([]Row, loadPageRows+3)
	want := make([]string, len(rows))
	for i := range rows {
		rows[i] = serviceRow("")
		want[i] = rows[i].ID
	}
	sort.Strings(want)
	if _, err := s.UpsertAll(context.Background(), []TableRows{{Table: Services, Rows: rows}}); err != nil {
		t.Fatal(err)
	}
	load, err := s.LoadConfigBounded(context.Background(), []Table{Services}, 10, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(load.Rows[Services.Name]); !slices.Equal(got, want) {
		t.Errorf("got %d rows, want the %d inserted in id order", len(got), len(want))
	}
}

// UpsertAllReporting tells its progress as the rows go out: rising, every
// progressEvery rows and at each table's end, finishing at the total.
func TestUpsertAllReporting(t *testing.T) {
	t.Parallel()
	s := bootstrapped(t)
	services := make([]Row, progressEvery+5)
	for i := range services {
		services[i] = serviceRow("")
	}
	var calls [][2]int
	_, err := s.UpsertAllReporting(context.Background(), []TableRows{{Table: Services, Rows: services}},
		func(sent, total int) { calls = append(calls, [2]int{sent, total}) })
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]int{{progressEvery, len(services)}, {len(services), len(services)}}
	if !slices.Equal(calls, want) {
		t.Fatalf("got progress %v, want %v", calls, want)
	}
}

// LoadDocsBounded reads what a node serves from: the same rows as a full
// load, each with its id, document (with "ttl" for a TTL table) and
// expiry, and nothing of the indexed columns.
func TestLoadDocsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, keys, cid := keysOfOneConsumer(t)
	future := time.Now().Add(time.Hour)
	mustInsert(t, s, keys, keyRow("expiring", cid, &future))
	mustInsert(t, s, keys, keyRow("forever", cid, nil))
	mustInsert(t, s, Services, serviceRow("s1", "a-tag"))
	tables := []Table{Services, TableOf(entity.MustKind("consumers")), keys}
	full, err := s.LoadConfigBounded(ctx, tables, 10, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := s.LoadDocsBounded(ctx, tables, 10, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if docs.MaxEventID != full.MaxEventID || len(docs.RecentEvents) != len(full.RecentEvents) {
		t.Errorf("got max event %d and %d events, want %d and %d as a full load", docs.MaxEventID, len(docs.RecentEvents), full.MaxEventID, len(full.RecentEvents))
	}
	for _, tbl := range tables {
		got, want := docs.Rows[tbl.Name], full.Rows[tbl.Name]
		if len(got) != len(want) {
			t.Fatalf("%s: got %d rows, want %d", tbl.Name, len(got), len(want))
		}
		for i := range got {
			w := Row{ID: want[i].ID, Doc: want[i].Doc, Expires: want[i].Expires}
			if got[i].ID != w.ID || ttlFree(t, got[i].Doc) != ttlFree(t, w.Doc) || !sameTime(got[i].Expires, w.Expires) {
				t.Errorf("%s: got row %+v, want %+v", tbl.Name, got[i], w)
			}
			if got[i].Key != nil || got[i].Unique != nil || got[i].Foreign != nil || got[i].Tags != nil || got[i].CreatedAt != 0 {
				t.Errorf("%s: got indexed columns in %+v, want none", tbl.Name, got[i])
			}
		}
	}
}

// ttlFree is doc without its "ttl", which each read renders at its own
// time, and says whether it had one.
func ttlFree(t *testing.T, doc json.RawMessage) string {
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	_, had := m["ttl"]
	delete(m, "ttl")
	return fmt.Sprintf("ttl %v: %s", had, mustJSON(m))
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// sortByID orders rows by id, whatever order they came in, ids sharing
// their first eight bytes (or shorter) included.
func TestSortByID(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 10, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rows := make([]Row, n)
			for i := range rows {
				id := uuid.NewString()
				if i%3 == 0 {
					id = "aaaaaaaa-" + fmt.Sprint(i) // ties on the prefix
				}
				if i%10 == 1 {
					id = id[:i%8] // shorter than the prefix
				}
				rows[i] = Row{ID: id, Doc: json.RawMessage(`"` + id + `"`)}
			}
			rand.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
			want := slices.Clone(rows)
			slices.SortFunc(want, func(a, b Row) int { return strings.Compare(a.ID, b.ID) })
			sortByID(rows)
			for i := range rows {
				if rows[i].ID != want[i].ID || string(rows[i].Doc) != string(want[i].Doc) {
					t.Fatalf("row %d: got %s, want %s", i, rows[i].ID, want[i].ID)
				}
			}
		})
	}
}
