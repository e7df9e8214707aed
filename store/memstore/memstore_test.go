package memstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/entity/declarative"
	"github.com/grapevine-gw/grapevine/store"
)

func mustSet(t *testing.T, doc string) *Set {
	t.Helper()
	cfg, err := declarative.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	rows, err := Rows(cfg)
	if err != nil {
		t.Fatalf("rows: %v", err)
	}
	return New(rows)
}

// TestLookups: the reads the Admin API makes find rows by id, endpoint
// key, unique field, key within a parent and cache key, as the store's do.
func TestLookups(t *testing.T) {
	s := mustSet(t, `_format_version: "3.0"
services:
- name: s1
  id: 11111111-1111-1111-1111-111111111111
  host: a.test
  routes:
  - name: r1
    paths: [/a]
consumers:
- username: alice
  custom_id: c-alice
  acls:
  - group: admins
upstreams:
- name: u1
  targets:
  - target: 10.0.0.1:80
`)
	ctx := context.Background()
	routes, _ := store.TableByName("routes")
	consumers, _ := store.TableByName("consumers")
	targets, _ := store.TableByName("targets")
	upstreams, _ := store.TableByName("upstreams")
	if _, err := s.Get(ctx, store.Services, "11111111-1111-1111-1111-111111111111"); err != nil {
		t.Errorf("get by id: %v", err)
	}
	if _, err := s.GetByKey(ctx, store.Services, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get a missing key: got %v, want ErrNotFound", err)
	}
	r, err := s.GetByKey(ctx, routes, "r1")
	if err != nil || r.Foreign["service"] != "11111111-1111-1111-1111-111111111111" {
		t.Errorf("route r1: got %+v, %v, want it under s1", r, err)
	}
	if _, err := s.GetByUnique(ctx, consumers, "custom_id", "c-alice"); err != nil {
		t.Errorf("consumer by custom_id: %v", err)
	}
	u, _ := s.GetByKey(ctx, upstreams, "u1")
	if _, err := s.GetByScopedKey(ctx, targets, u.ID, "10.0.0.1:80"); err != nil {
		t.Errorf("target by key within its upstream: %v", err)
	}
	refs, err := s.Referring(ctx, routes, "service", "11111111-1111-1111-1111-111111111111")
	if err != nil || len(refs) != 1 {
		t.Errorf("routes of s1: got %d, %v, want 1", len(refs), err)
	}
}

// TestListPages: pages follow id order with the store's offset tokens and
// tag filters (all tags, or any with AnyTag).
func TestListPages(t *testing.T) {
	doc := "_format_version: \"3.0\"\nservices:\n"
	for i := range 25 {
		tags := "[odd]"
		if i%2 == 0 {
			tags = "[even, x]"
		}
		doc += fmt.Sprintf("- name: s%02d\n  host: h.test\n  tags: %s\n", i, tags)
	}
	s := mustSet(t, doc)
	ctx := context.Background()
	var seen []string
	offset := ""
	for pages := 0; ; pages++ {
		rows, next, err := s.List(ctx, store.Services, store.Page{Size: 10, Offset: offset})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			seen = append(seen, r.ID)
		}
		if next == "" {
			if pages != 2 {
				t.Errorf("got %d pages, want 3", pages+1)
			}
			break
		}
		offset = next
	}
	if len(seen) != 25 {
		t.Fatalf("got %d rows over all pages, want 25", len(seen))
	}
	for i := 1; i < len(seen); i++ {
		if seen[i-1] >= seen[i] {
			t.Fatalf("rows not in id order at %d", i)
		}
	}
	for _, tc := range []struct {
		name string
		page store.Page
		want int
	}{
		{"all of even,x", store.Page{Tags: []string{"even", "x"}}, 13},
		{"all of even,odd", store.Page{Tags: []string{"even", "odd"}}, 0},
		{"any of even/odd", store.Page{Tags: []string{"even", "odd"}, AnyTag: true}, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, _, err := s.List(ctx, store.Services, tc.page)
			if err != nil || len(rows) != tc.want {
				t.Errorf("got %d rows, %v, want %d", len(rows), err, tc.want)
			}
		})
	}
	if _, _, err := s.List(ctx, store.Services, store.Page{Offset: "!!"}); !errors.Is(err, store.ErrInvalidOffset) {
		t.Errorf("bad offset: got %v, want ErrInvalidOffset", err)
	}
}

// TestTTLRows: a DB-less node's reads treat a key-auth credential's ttl as
// the store's do (Kong's ttl_select_where, kong/db/strategies/postgres/init.lua,
// which DB-less mode follows in kong/db/strategies/off/init.lua): an
// expired row is seen by no read, and a live one shows "ttl" as the
// seconds left, null for a key that never expires. A file gives ttl as
// the Unix time the key expires, as Kong's export writes it.
func TestTTLRows(t *testing.T) {
	now := time.Now()
	s := mustSet(t, fmt.Sprintf(`_format_version: "3.0"
consumers:
- username: alice
  id: 22222222-2222-2222-2222-222222222222
  keyauth_credentials:
  - key: expired
    id: 33333333-3333-3333-3333-333333333331
    ttl: %d
  - key: live
    id: 33333333-3333-3333-3333-333333333332
    ttl: %d
  - key: forever
    id: 33333333-3333-3333-3333-333333333333
`, now.Add(-time.Minute).Unix(), now.Add(time.Hour).Unix()))
	ctx := context.Background()
	keys, _ := store.TableByName("keyauth_credentials")
	ttlOf := func(r store.Row) any {
		var doc map[string]any
		if err := json.Unmarshal(r.Doc, &doc); err != nil {
			t.Fatalf("%s: %v", r.Doc, err)
		}
		ttl, ok := doc["ttl"]
		if !ok {
			return "absent"
		}
		return ttl
	}
	if _, err := s.Get(ctx, keys, "33333333-3333-3333-3333-333333333331"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get the expired key: got %v, want ErrNotFound", err)
	}
	live, err := s.Get(ctx, keys, "33333333-3333-3333-3333-333333333332")
	if err != nil {
		t.Fatalf("get the live key: %v", err)
	}
	if ttl, _ := ttlOf(live).(float64); ttl < 3590 || ttl > 3600 {
		t.Errorf("the live key: got ttl %v, want the seconds left (about 3600)", ttlOf(live))
	}
	forever, err := s.Get(ctx, keys, "33333333-3333-3333-3333-333333333333")
	if err != nil || ttlOf(forever) != nil {
		t.Errorf("the key without ttl: got ttl %v (%v), want null", ttlOf(forever), err)
	}
	all, _ := s.All(ctx, keys)
	listed, _, _ := s.List(ctx, keys, store.Page{})
	referring, _ := s.Referring(ctx, keys, "consumer", "22222222-2222-2222-2222-222222222222")
	for name, rows := range map[string][]store.Row{"All": all, "List": listed, "Referring": referring} {
		var got []string
		for _, r := range rows {
			got = append(got, r.ID[len(r.ID)-1:])
			if ttlOf(r) == "absent" {
				t.Errorf("%s: row %s without ttl, want it shown", name, r.ID)
			}
		}
		if fmt.Sprint(got) != "[2 3]" {
			t.Errorf("%s: got rows ending %v, want [2 3] (the expired one left out)", name, got)
		}
	}
	if n := len(s.Rows()["keyauth_credentials"]); n != 3 {
		t.Errorf("Rows (what the node builds from, checking expiry on its own clock): got %d, want 3", n)
	}
}
