package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/internal/pgtest"
	"github.com/grapevine-gw/grapevine/internal/testutil"
	"github.com/grapevine-gw/grapevine/store"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// A client that gives up on a request is not a database outage: it used
// to be logged at error level as "database unavailable" with a 503.
func TestCancelledRequestIsNotAnOutage(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	st, err := store.Open(ctx, store.Config{DSN: dsn})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(st.Close)
	if err := st.Bootstrap(ctx); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	var logs testutil.LogBuffer
	srv := New(Config{Version: "3.9.1", Logger: zerolog.New(&logs).Level(zerolog.DebugLevel)}, st, &recordingApplier{})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	env := &testEnv{t: t, url: hs.URL, st: st, srv: srv}
	if r := env.json("POST", "/services", `{"name":"s","host":"h.test"}`); r.status != 201 {
		t.Fatalf("create: got %d %s", r.status, r.raw)
	}

	// Another session holds the service's row, so the PATCH waits on it.
	locker, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT 1 FROM services WHERE name = 's' FOR UPDATE"); err != nil {
		t.Fatalf("lock: %v", err)
	}

	reqCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(reqCtx, "PATCH", hs.URL+"/services/s", strings.NewReader(`{"retries":1}`))
	req.Header.Set("Content-Type", "application/json")
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatalf("got an answer while the row was locked, want the client to give up")
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(logs.String(), "admin client closed the request") {
			return errorString("the server has not finished the cancelled request")
		}
		return nil
	})
	if got := logs.String(); strings.Contains(got, `"level":"error"`) || strings.Contains(got, "database unavailable") {
		t.Errorf("got %s, want no error line for a client that went away", got)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
