package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/grapevine-gw/grapevine/entity"
)

// keyRow is a key-auth credential of consumerID expiring at expires (nil:
// never).
// keysOfOneConsumer is a fresh store with one consumer, for tests of
// its key-auth credentials: the store, the credentials' table and the
// consumer's id.
func keysOfOneConsumer(t *testing.T) (*Store, Table, string) {
	t.Helper()
	s := bootstrapped(t)
	consumers := TableOf(entity.MustKind("consumers"))
	cid := uuid.NewString()
	mustInsert(t, s, consumers, Row{ID: cid, Doc: mustJSON(map[string]any{"id": cid})})
	return s, TableOf(entity.MustKind("keyauth_credentials")), cid
}

func keyRow(key, consumerID string, expires *time.Time) Row {
	id := uuid.NewString()
	return Row{ID: id, Key: ptr(key), Foreign: map[string]string{"consumer": consumerID}, CreatedAt: time.Now().Unix(),
		Expires: expires,
		Doc:     mustJSON(map[string]any{"id": id, "key": key, "consumer": map[string]any{"id": consumerID}})}
}

// Expired rows of a TTL table are invisible to every read and deleted by
// DeleteExpired, as Kong's postgres strategy (ttl_select_where and the
// cleanup timer, kong/db/strategies/postgres/init.lua and connector.lua).
func TestTTLRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, keys, cid := keysOfOneConsumer(t)
	past, future := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	live := mustInsert(t, s, keys, keyRow("live", cid, &future))
	forever := mustInsert(t, s, keys, keyRow("forever", cid, nil))
	// Last: an insert first deletes the table's expired rows.
	gone := mustInsert(t, s, keys, keyRow("gone", cid, &past))

	reads := []struct {
		name string
		read func() error
	}{
		{"Get", func() error { _, err := s.Get(ctx, keys, gone.ID); return err }},
		{"GetByKey", func() error { _, err := s.GetByKey(ctx, keys, "gone"); return err }},
		{"GetByUnique", func() error { _, err := s.GetByUnique(ctx, keys, "key", "gone"); return err }},
	}
	for _, r := range reads {
		t.Run(r.name+" of an expired row", func(t *testing.T) {
			if err := r.read(); !errors.Is(err, ErrNotFound) {
				t.Errorf("got %v, want ErrNotFound", err)
			}
		})
	}
	t.Run("List, All and Referring leave it out", func(t *testing.T) {
		page, _, err := s.List(ctx, keys, Page{})
		if err != nil {
			t.Fatal(err)
		}
		all, err := s.All(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		under, err := s.Referring(ctx, keys, "consumer", cid)
		if err != nil {
			t.Fatal(err)
		}
		for name, rows := range map[string][]Row{"List": page, "All": all, "Referring": under} {
			if len(rows) != 2 {
				t.Errorf("%s: got %d rows %v, want the 2 unexpired", name, len(rows), ids(rows))
			}
		}
	})
	t.Run("reads render the seconds left", func(t *testing.T) {
		for _, tc := range []struct {
			row  Row
			want any
		}{{live, float64(3599)}, {forever, nil}} {
			got, err := s.Get(ctx, keys, tc.row.ID)
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := json.Unmarshal(got.Doc, &doc); err != nil {
				t.Fatal(err)
			}
			if v, ok := doc["ttl"]; !ok || v != tc.want {
				t.Errorf("%s: got ttl %v (present %v), want %v", got.ID, v, ok, tc.want)
			}
			if (got.Expires == nil) != (tc.row.Expires == nil) {
				t.Errorf("%s: got Expires %v, want %v", got.ID, got.Expires, tc.row.Expires)
			}
		}
	})
	t.Run("DeleteExpired removes only the expired row", func(t *testing.T) {
		n, err := s.DeleteExpired(ctx)
		if err != nil || n != 1 {
			t.Errorf("got %d, %v; want 1 deleted", n, err)
		}
		if n, _ := s.DeleteExpired(ctx); n != 0 {
			t.Errorf("again: got %d deleted, want 0", n)
		}
	})
}

func TestWithTTL(t *testing.T) {
	now := time.Unix(1000, 500_000_000)
	at := func(sec int64) *time.Time { x := time.Unix(sec, 0); return &x }
	cases := []struct {
		name    string
		doc     string
		expires *time.Time
		want    string
	}{
		{"never", `{"id":"a"}`, nil, `{"ttl":null,"id":"a"}`},
		{"seconds left, floored", `{"id":"a"}`, at(1010), `{"ttl":9,"id":"a"}`},
		{"past is 0", `{"id":"a"}`, at(990), `{"ttl":0,"id":"a"}`},
		{"empty object", `{}`, at(1002), `{"ttl":1}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(WithTTL(json.RawMessage(tc.doc), tc.expires, now)); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}
