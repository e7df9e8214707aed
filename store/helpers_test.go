package store

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/grapevine-gw/grapevine/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openStore opens a store on a fresh, empty database.
func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{DSN: pgtest.NewDatabase(t), NodeID: "node-test"})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// bootstrapped opens a store on a fresh database with every migration applied.
func bootstrapped(t *testing.T) *Store {
	t.Helper()
	s := openStore(t)
	if err := s.Bootstrap(context.Background()); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return s
}

func ptr(s string) *string { return &s }

// serviceRow makes a service row named name (no name if "").
func serviceRow(name string, tags ...string) Row {
	id := uuid.NewString()
	r := Row{ID: id, Tags: tags, CreatedAt: 1700000000, UpdatedAt: 1700000001}
	doc := map[string]any{"id": id, "host": "example.com", "tags": tags}
	if name != "" {
		r.Key = ptr(name)
		doc["name"] = name
	}
	r.Doc = mustJSON(doc)
	return r
}

// routeRow makes a route of serviceID ("" for none).
func routeRow(name, serviceID string, tags ...string) Row {
	r := serviceRow(name, tags...)
	if serviceID != "" {
		r.Foreign = map[string]string{"service": serviceID}
	}
	return r
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func mustInsert(t *testing.T, s *Store, tbl Table, r Row) Row {
	t.Helper()
	if _, err := s.Insert(context.Background(), tbl, r); err != nil {
		t.Fatalf("insert %s %s: %v", tbl.Name, r.ID, err)
	}
	return r
}

func countEvents(t *testing.T, s *Store) int {
	t.Helper()
	events, err := s.EventsSince(context.Background(), 0, 100000)
	if err != nil {
		t.Fatalf("events since 0: %v", err)
	}
	return len(events)
}

func ids(rows []Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

func sameJSON(t *testing.T, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want invalid JSON %s: %v", want, err)
	}
	if fmt.Sprint(g) != fmt.Sprint(w) {
		t.Errorf("got doc %s, want %s", got, want)
	}
}
