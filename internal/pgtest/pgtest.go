// Package pgtest owns the throwaway PostgreSQL server that tests run against:
// one server per test binary, started lazily by the first NewDatabase call in
// a temporary folder on a random loopback port, and one fresh database per
// test. It must not touch any PostgreSQL it did not start, and it is for
// tests only: nothing outside *_test.go files may import it.
//
// Use it from a package's TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		dsn := pgtest.NewDatabase(t)
//		...
//	}
package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// User is the superuser every pgtest server is initialised with; it
// authenticates with trust, so DSNs carry no password.
const User = "grapevine"

// startTimeout bounds how long starting the server may take, initdb included.
const startTimeout = 60 * time.Second

var (
	// mainCalled is set by Main; NewDatabase refuses to start a server that
	// nothing would stop.
	mainCalled atomic.Bool

	// mu guards the fields below it.
	mu       sync.Mutex
	srv      *server // nil until started
	startErr error   // sticky: a failed start is not retried
	admin    *pgxpool.Pool
	dbSeq    int
)

// Main runs the package's tests and then stops the server if a test started
// one, removes its folder and exits with the tests' status. Call it from
// TestMain.
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	stop()
	os.Exit(code)
}

// Server starts the server if needed and returns where it listens. It panics
// if the server cannot start; tests should prefer NewDatabase.
func Server() (host string, port int) {
	s, err := ensureStarted()
	if err != nil {
		panic(fmt.Sprintf("pgtest: %v", err))
	}
	return s.host, s.port
}

// DSN returns the connection string for database name on the test server.
func DSN(name string) string {
	host, port := Server()
	return dsn(host, port, name)
}

func dsn(host string, port int, name string) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", User, host, port, name)
}

// NewDatabase creates a fresh, empty database for t and returns its DSN. The
// database is dropped (WITH (FORCE), so open connections do not block it)
// when t ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("pgtest: call pgtest.Main(m) from the package's TestMain before NewDatabase")
	}
	s, err := ensureStarted()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := nextName()
	ident := pgx.Identifier{name}.Sanitize()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() { dropDatabase(t, ident) })
	return dsn(s.host, s.port, name)
}

func nextName() string {
	mu.Lock()
	defer mu.Unlock()
	dbSeq++
	return fmt.Sprintf("pgtest_%d_%d", os.Getpid(), dbSeq)
}

func dropDatabase(t testing.TB, ident string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		t.Errorf("pgtest: drop database %s: %v", ident, err)
	}
}

// ensureStarted starts the server and the admin pool once per test binary.
func ensureStarted() (*server, error) {
	mu.Lock()
	defer mu.Unlock()
	if srv != nil || startErr != nil {
		return srv, startErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := startServer(ctx)
	if err != nil {
		startErr = err
		return nil, err
	}
	pool, err := pgxpool.New(ctx, dsn(s.host, s.port, "postgres"))
	if err != nil {
		s.stop()
		startErr = fmt.Errorf("open admin pool: %w", err)
		return nil, startErr
	}
	srv, admin = s, pool
	return srv, nil
}

// stop shuts the server down if it was started.
func stop() {
	mu.Lock()
	defer mu.Unlock()
	if admin != nil {
		admin.Close()
		admin = nil
	}
	if srv != nil {
		srv.stop()
		srv = nil
	}
}
