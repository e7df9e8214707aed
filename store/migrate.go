package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationsFS holds the NNN_name.sql files; tests swap it to add some.
var migrationsFS = mustSub(migrationFiles, "migrations")

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// ownedTables lists every table the migrations create, children before
// parents, so Reset can drop exactly what this package made: the cluster's
// own tables and one per registered entity kind. A test checks it against
// a freshly bootstrapped database.
func ownedTables() []string {
	names := []string{"response_ratelimiting_metrics", "ratelimiting_metrics", "nodes"}
	tables := Tables()
	for i := len(tables) - 1; i >= 0; i-- {
		names = append(names, tables[i].Name)
	}
	return append(names, "cluster_events")
}

// ownedFunctions are the functions the migrations create, for Reset.
var ownedFunctions = []string{"grapevine_ratelimit_take"}

// AddMigrationForTest makes this binary carry one more migration (name as
// NNN_name, without ".sql") until remove is called: a test's own entity
// kind. It swaps a package variable, so its tests must not be parallel
// (parallel tests start after serial ones end).
func AddMigrationForTest(name, sql string) (remove func()) {
	fsys := fstest.MapFS{}
	entries, err := fs.ReadDir(migrationsFS, ".")
	if err != nil {
		panic(err) // embedded files are checked by tests
	}
	for _, e := range entries {
		b, err := fs.ReadFile(migrationsFS, e.Name())
		if err != nil {
			panic(err)
		}
		fsys[e.Name()] = &fstest.MapFile{Data: b}
	}
	fsys[name+".sql"] = &fstest.MapFile{Data: []byte(sql)}
	old := migrationsFS
	migrationsFS = fsys
	return func() { migrationsFS = old }
}

// migrationLockKey is the advisory lock that serialises migrations across
// processes ("grapevine" folded into an int64; any constant would do).
const migrationLockKey int64 = 0x6772617065766e

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	name        text        PRIMARY KEY,
	executed_at timestamptz NOT NULL DEFAULT now()
)`

var migrationName = regexp.MustCompile(`^[0-9]{3}_[a-z0-9_]+\.sql$`)

// migration is one embedded SQL file.
type migration struct {
	name string // file name without ".sql", e.g. "001_base"
	sql  string
}

// MigrationStatus describes the database's schema against this binary's
// migrations.
type MigrationStatus struct {
	Executed     []string // applied, in order
	Pending      []string // known to this binary, not yet applied, in order
	Bootstrapped bool     // at least one migration applied
	// Unknown lists applied migrations this binary does not know: the
	// database was migrated by a newer version.
	Unknown []string
}

// Migrations returns the names of every migration this binary carries, in
// the order they apply.
func Migrations() []string {
	all, err := loadMigrations()
	if err != nil {
		panic(err) // embedded files are checked by tests
	}
	names := make([]string, len(all))
	for i, m := range all {
		names[i] = m.name
	}
	return names
}

func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationsFS, ".")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var all []migration
	for _, e := range entries {
		if !migrationName.MatchString(e.Name()) {
			return nil, fmt.Errorf("migration file %q: want NNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(migrationsFS, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		all = append(all, migration{name: strings.TrimSuffix(e.Name(), ".sql"), sql: string(b)})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	return all, nil
}

// Bootstrap applies every migration to an empty database. On a database that
// already has migrations it changes nothing and returns ErrAlreadyBootstrapped.
func (s *Store) Bootstrap(ctx context.Context) error {
	return s.withMigrationLock(ctx, func(conn *pgxpool.Conn) error {
		st, err := status(ctx, conn)
		if err != nil {
			return err
		}
		if st.Bootstrapped {
			return fmt.Errorf("bootstrap: %w", ErrAlreadyBootstrapped)
		}
		_, err = applyPending(ctx, conn, st)
		return err
	})
}

// Up applies the pending migrations of a bootstrapped database and returns
// their names (none: nothing to do). Like Kong, it refuses an empty
// database: that needs Bootstrap (ErrNotBootstrapped).
func (s *Store) Up(ctx context.Context) ([]string, error) {
	var applied []string
	err := s.withMigrationLock(ctx, func(conn *pgxpool.Conn) error {
		st, err := status(ctx, conn)
		if err != nil {
			return err
		}
		if !st.Bootstrapped {
			return fmt.Errorf("up: %w", ErrNotBootstrapped)
		}
		applied, err = applyPending(ctx, conn, st)
		return err
	})
	return applied, err
}

// MigrationStatus reports which migrations are applied and which pending.
func (s *Store) MigrationStatus(ctx context.Context) (MigrationStatus, error) {
	st, err := status(ctx, s.pool)
	if err != nil {
		return MigrationStatus{}, fmt.Errorf("migration status: %w", classify(err))
	}
	return st, nil
}

// CheckSchema returns nil only if every migration this binary knows is
// applied; otherwise an error matching ErrNotBootstrapped or
// ErrPendingMigrations (naming the pending ones). Nodes call it at start.
func (s *Store) CheckSchema(ctx context.Context) error {
	st, err := s.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	if !st.Bootstrapped {
		return fmt.Errorf("check schema: %w", ErrNotBootstrapped)
	}
	if len(st.Pending) > 0 {
		return fmt.Errorf("check schema: %w: %s", ErrPendingMigrations, strings.Join(st.Pending, ", "))
	}
	return nil
}

// Reset drops every table this package made, schema_migrations included,
// leaving the database as before Bootstrap.
func (s *Store) Reset(ctx context.Context) error {
	return s.withMigrationLock(ctx, func(conn *pgxpool.Conn) error {
		tables := append(ownedTables(), "schema_migrations")
		for i, t := range tables {
			tables[i] = pgx.Identifier{t}.Sanitize()
		}
		if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+strings.Join(tables, ", ")+" CASCADE"); err != nil {
			return fmt.Errorf("reset: %w", classify(err))
		}
		for _, f := range ownedFunctions {
			if _, err := conn.Exec(ctx, "DROP FUNCTION IF EXISTS "+f); err != nil {
				return fmt.Errorf("reset: %w", classify(err))
			}
		}
		return nil
	})
}

// withMigrationLock runs fn on one connection holding the session advisory
// lock, so that concurrent bootstraps and ups from many nodes run one after
// the other and each sees what the previous one did.
func (s *Store) withMigrationLock(ctx context.Context, fn func(*pgxpool.Conn) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection for migrations: %w", classify(err))
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return fmt.Errorf("take migration lock: %w", classify(err))
	}
	defer unlockMigrations(conn)
	return fn(conn)
}

// unlockMigrations releases the lock even if the caller's ctx is done; if it
// cannot, it closes the connection, which releases the lock too.
func unlockMigrations(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", migrationLockKey); err != nil {
		_ = conn.Conn().Close(ctx)
	}
}

// querier is what both a pool and a single connection offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// status compares the applied migrations with the embedded ones.
func status(ctx context.Context, q querier) (MigrationStatus, error) {
	all, err := loadMigrations()
	if err != nil {
		return MigrationStatus{}, err
	}
	done, err := executed(ctx, q)
	if err != nil {
		return MigrationStatus{}, err
	}
	st := MigrationStatus{Bootstrapped: len(done) > 0}
	known := make(map[string]bool, len(all))
	for _, m := range all {
		known[m.name] = true
		if done[m.name] {
			st.Executed = append(st.Executed, m.name)
		} else {
			st.Pending = append(st.Pending, m.name)
		}
	}
	for name := range done {
		if !known[name] {
			st.Unknown = append(st.Unknown, name)
		}
	}
	sort.Strings(st.Unknown)
	return st, nil
}

// executed returns the applied migrations; none if schema_migrations does
// not exist yet.
func executed(ctx context.Context, q querier) (map[string]bool, error) {
	var exists bool
	err := q.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists)
	if err != nil {
		return nil, fmt.Errorf("look for schema_migrations: %w", classify(err))
	}
	done := map[string]bool{}
	if !exists {
		return done, nil
	}
	rows, err := q.Query(ctx, "SELECT name FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", classify(err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", classify(err))
	}
	for _, n := range names {
		done[n] = true
	}
	return done, nil
}

// applyPending applies st.Pending in order, each in its own transaction.
func applyPending(ctx context.Context, conn *pgxpool.Conn, st MigrationStatus) ([]string, error) {
	all, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	pending := make(map[string]bool, len(st.Pending))
	for _, name := range st.Pending {
		pending[name] = true
	}
	var applied []string
	for _, m := range all {
		if !pending[m.name] {
			continue
		}
		if err := apply(ctx, conn, m); err != nil {
			return applied, err
		}
		applied = append(applied, m.name)
	}
	return applied, nil
}

// apply runs one migration and records it in the same transaction.
func apply(ctx context.Context, conn *pgxpool.Conn, m migration) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, createMigrationsTable); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (name) VALUES ($1)", m.name)
		return err
	})
	if err != nil {
		return fmt.Errorf("apply migration %s: %w", m.name, classify(err))
	}
	return nil
}
