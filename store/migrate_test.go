package store

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMigrationLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t)
	all := Migrations()
	steps := []struct {
		name    string
		run     func() error
		wantErr error
		want    MigrationStatus
	}{
		{"empty up refuses", func() error { _, err := s.Up(ctx); return err }, ErrNotBootstrapped,
			MigrationStatus{Pending: all}},
		{"empty check", func() error { return s.CheckSchema(ctx) }, ErrNotBootstrapped,
			MigrationStatus{Pending: all}},
		{"bootstrap", func() error { return s.Bootstrap(ctx) }, nil,
			MigrationStatus{Executed: all, Bootstrapped: true}},
		{"bootstrap again", func() error { return s.Bootstrap(ctx) }, ErrAlreadyBootstrapped,
			MigrationStatus{Executed: all, Bootstrapped: true}},
		{"check", func() error { return s.CheckSchema(ctx) }, nil,
			MigrationStatus{Executed: all, Bootstrapped: true}},
		{"up with nothing pending", func() error {
			applied, err := s.Up(ctx)
			if len(applied) != 0 {
				t.Errorf("got applied %v, want none", applied)
			}
			return err
		}, nil, MigrationStatus{Executed: all, Bootstrapped: true}},
		{"reset", func() error { return s.Reset(ctx) }, nil, MigrationStatus{Pending: all}},
		{"reset again", func() error { return s.Reset(ctx) }, nil, MigrationStatus{Pending: all}},
		{"bootstrap after reset", func() error { return s.Bootstrap(ctx) }, nil,
			MigrationStatus{Executed: all, Bootstrapped: true}},
	}
	for _, step := range steps {
		err := step.run()
		if !errors.Is(err, step.wantErr) || (step.wantErr == nil && err != nil) {
			t.Fatalf("%s: got error %v, want %v", step.name, err, step.wantErr)
		}
		got, err := s.MigrationStatus(ctx)
		if err != nil {
			t.Fatalf("%s: status: %v", step.name, err)
		}
		if !equalStatus(got, step.want) {
			t.Fatalf("%s: got status %+v, want %+v", step.name, got, step.want)
		}
	}
}

func equalStatus(a, b MigrationStatus) bool {
	return slices.Equal(a.Executed, b.Executed) && slices.Equal(a.Pending, b.Pending) &&
		a.Bootstrapped == b.Bootstrapped && slices.Equal(a.Unknown, b.Unknown)
}

// TestOwnedTables keeps ownedTables (what Reset drops) in step with the
// migrations, and checks Reset leaves no table behind.
func TestOwnedTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	want := append(ownedTables(), "schema_migrations")
	sort.Strings(want)
	if got := tables(t, s); !slices.Equal(got, want) {
		t.Fatalf("got tables %v after bootstrap, want %v: update ownedTables", got, want)
	}
	if err := s.Reset(ctx); err != nil {
		t.Fatalf("reset: %v", err)
	}
	if got := tables(t, s); len(got) != 0 {
		t.Fatalf("got tables %v after reset, want none", got)
	}
}

func tables(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(),
		"SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1")
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatalf("scan: %v", err)
		}
		names = append(names, n)
	}
	return names
}

// withExtraMigration makes this binary carry one more migration than the
// embedded ones until the test ends. It swaps a package variable, so its
// tests must not be parallel (parallel tests start after serial ones end).
func withExtraMigration(t *testing.T, name, sql string) {
	t.Cleanup(AddMigrationForTest(name, sql))
}

func TestPendingMigrations(t *testing.T) {
	ctx := context.Background()
	s := bootstrapped(t)
	withExtraMigration(t, "999_extra", "CREATE TABLE extra (id int)")

	err := s.CheckSchema(ctx)
	if !errors.Is(err, ErrPendingMigrations) {
		t.Fatalf("check: got %v, want ErrPendingMigrations", err)
	}
	applied, err := s.Up(ctx)
	if err != nil || !slices.Equal(applied, []string{"999_extra"}) {
		t.Fatalf("up: got %v, %v, want [999_extra], nil", applied, err)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatalf("check after up: %v", err)
	}
}

func TestFailedMigrationRollsBack(t *testing.T) {
	ctx := context.Background()
	s := bootstrapped(t)
	withExtraMigration(t, "999_broken", "CREATE TABLE half (id int); SELECT no_such_function()")

	if _, err := s.Up(ctx); err == nil {
		t.Fatal("up: got nil error, want the migration's failure")
	}
	if slices.Contains(tables(t, s), "half") {
		t.Fatal("got table half after a failed migration, want it rolled back")
	}
	st, err := s.MigrationStatus(ctx)
	if err != nil || !slices.Equal(st.Pending, []string{"999_broken"}) {
		t.Fatalf("got status %+v, %v, want 999_broken pending", st, err)
	}
}

func TestUnknownMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := bootstrapped(t)
	if _, err := s.pool.Exec(ctx, "INSERT INTO schema_migrations (name) VALUES ('999_future')"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	st, err := s.MigrationStatus(ctx)
	if err != nil || !slices.Equal(st.Unknown, []string{"999_future"}) {
		t.Fatalf("got status %+v, %v, want 999_future unknown", st, err)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatalf("check with a newer schema: got %v, want nil", err)
	}
}

func TestConcurrentBootstrap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t)
	other, err := Open(ctx, Config{DSN: s.pool.Config().ConnString()})
	if err != nil {
		t.Fatalf("open second store: %v", err)
	}
	t.Cleanup(other.Close)

	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := s
			if i%2 == 1 {
				st = other // a second pool, like a second node
			}
			errs[i] = st.Bootstrap(ctx)
		}()
	}
	wg.Wait()
	var ok int
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrAlreadyBootstrapped):
			t.Errorf("bootstrap %d: got %v, want nil or ErrAlreadyBootstrapped", i, err)
		}
	}
	if ok != 1 {
		t.Fatalf("got %d successful bootstraps, want 1", ok)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatalf("check: %v", err)
	}
}

func TestEmbeddedMigrationsLoad(t *testing.T) {
	all, err := loadMigrations()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(all) == 0 || all[0].name != "001_base" {
		t.Fatalf("got %d migrations, want 001_base first", len(all))
	}
}

// applyOnly applies the named embedded migrations and no others, as an
// older binary would have.
func applyOnly(t *testing.T, s *Store, names ...string) {
	t.Helper()
	ctx := context.Background()
	all, err := loadMigrations()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	err = s.withMigrationLock(ctx, func(conn *pgxpool.Conn) error {
		for _, m := range all {
			if slices.Contains(names, m.name) {
				if err := apply(ctx, conn, m); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("apply %v: %v", names, err)
	}
}

// TestUpFromBase: a database bootstrapped by a binary that knew only
// 001_base has 002_nodes pending; Up applies it.
func TestUpFromBase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t)
	applyOnly(t, s, "001_base")

	err := s.CheckSchema(ctx)
	if !errors.Is(err, ErrPendingMigrations) || !strings.Contains(err.Error(), "002_nodes") {
		t.Fatalf("check: got %v, want ErrPendingMigrations naming 002_nodes", err)
	}
	if slices.Contains(tables(t, s), "nodes") {
		t.Fatal("got table nodes before up, want none")
	}
	applied, err := s.Up(ctx)
	if err != nil || len(applied) == 0 || applied[0] != "002_nodes" {
		t.Fatalf("up: got %v, %v, want 002_nodes first (and the later ones), nil", applied, err)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatalf("check after up: %v", err)
	}
	checkNodesSchema(t, s)
}

func TestBootstrapAppliesNodes(t *testing.T) {
	t.Parallel()
	s := bootstrapped(t)
	st, err := s.MigrationStatus(context.Background())
	if err != nil || len(st.Executed) < 2 || !slices.Equal(st.Executed[:2], []string{"001_base", "002_nodes"}) {
		t.Fatalf("got status %+v, %v, want 001_base and 002_nodes executed", st, err)
	}
	checkNodesSchema(t, s)
}

// checkNodesSchema checks what 002_nodes creates.
func checkNodesSchema(t *testing.T, s *Store) {
	t.Helper()
	if !slices.Contains(tables(t, s), "nodes") {
		t.Fatal("got no table nodes, want one")
	}
	var index bool
	err := s.pool.QueryRow(context.Background(),
		"SELECT to_regclass('cluster_events_at_idx') IS NOT NULL").Scan(&index)
	if err != nil || !index {
		t.Fatalf("got index cluster_events_at_idx: %v, %v, want it present", index, err)
	}
}
