package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// OwnServer is a PostgreSQL server that one test owns alone, so that it can
// stop it and start it again (a database outage) without touching the
// server every other test shares. Its commits are durable
// (synchronous_commit on): what a client saw committed survives Stop.
type OwnServer struct {
	bin  string
	own  *owner
	root string
	host string
	port int

	mu sync.Mutex // guards s
	s  *server    // nil while stopped
}

// NewOwnServer initialises and starts a server of t's own; it is stopped and
// its folder removed when t ends.
func NewOwnServer(t testing.TB) *OwnServer {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("pgtest: call pgtest.Main(m) from the package's TestMain before NewOwnServer")
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	bin, own, root, err := prepare(ctx)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s, err := launch(ctx, bin, root, own, 0, true)
	if err != nil {
		os.RemoveAll(root)
		t.Fatalf("pgtest: %v", err)
	}
	o := &OwnServer{bin: bin, own: own, root: root, host: s.host, port: s.port, s: s}
	t.Cleanup(o.remove)
	return o
}

// DSN returns the connection string for database name on this server.
func (o *OwnServer) DSN(name string) string { return dsn(o.host, o.port, name) }

// NewDatabase creates database name on this server and returns its DSN.
func (o *OwnServer) NewDatabase(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, o.DSN("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return o.DSN(name)
}

// Stop shuts the server down at once, as `pg_ctl stop -m immediate` does
// (SIGQUIT to the postmaster): open connections are cut, new ones refused.
func (o *OwnServer) Stop(t testing.TB) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.s != nil {
		o.s.kill()
		o.s = nil
	}
}

// Start starts a stopped server again on the same port and data; it
// recovers from the immediate shutdown before it accepts connections.
func (o *OwnServer) Start(t testing.TB) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.s != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := launch(ctx, o.bin, o.root, o.own, o.port, true)
	if err != nil {
		t.Fatalf("pgtest: restarting the server on port %d: %v", o.port, err)
	}
	o.s = s
}

func (o *OwnServer) remove() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.s != nil {
		o.s.kill()
		o.s = nil
	}
	if err := os.RemoveAll(o.root); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: remove %s: %v\n", o.root, err)
	}
}
