package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/grapevine-gw/grapevine/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestNewDatabaseIsFreshAndIsolated(t *testing.T) {
	ctx := context.Background()
	dsnA := pgtest.NewDatabase(t)
	dsnB := pgtest.NewDatabase(t)
	if dsnA == dsnB {
		t.Fatalf("got the same DSN twice: %s", dsnA)
	}
	a := connect(t, dsnA)
	if _, err := a.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	b := connect(t, dsnB)
	var n int
	if err := b.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n); err != nil {
		t.Fatalf("count tables: %v", err)
	}
	if n != 0 {
		t.Fatalf("got %d tables named only_in_a in database B, want 0", n)
	}
}

func TestDatabaseDroppedOnCleanup(t *testing.T) {
	var dsn string
	t.Run("inner", func(t *testing.T) {
		dsn = pgtest.NewDatabase(t)
		// Left open on purpose: dropping the database must force it closed.
		if _, err := pgx.Connect(context.Background(), dsn); err != nil {
			t.Fatalf("connect: %v", err)
		}
	})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		conn.Close(ctx)
		t.Fatalf("connected to %s after its test ended, want it dropped", dsn)
	}
}

func TestConcurrentNewDatabase(t *testing.T) {
	for i := 0; i < 8; i++ {
		t.Run("parallel", func(t *testing.T) {
			t.Parallel()
			connect(t, pgtest.NewDatabase(t))
		})
	}
}

func TestServer(t *testing.T) {
	host, port := pgtest.Server()
	if host != "127.0.0.1" || port <= 0 {
		t.Fatalf("got %s:%d, want 127.0.0.1 and a port", host, port)
	}
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}
