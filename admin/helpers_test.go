package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/grapevine-gw/grapevine/internal/pgtest"
	"github.com/grapevine-gw/grapevine/store"
	"github.com/rs/zerolog"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// recordingApplier is a fake Applier that records the changes it is given.
type recordingApplier struct {
	mu      sync.Mutex // guards changes
	changes []store.Change
}

func (a *recordingApplier) Apply(_ context.Context, c store.Change) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.changes = append(a.changes, c)
	return nil
}

func (a *recordingApplier) snapshot() []store.Change {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]store.Change(nil), a.changes...)
}

func (a *recordingApplier) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.changes)
}

type testEnv struct {
	t       *testing.T
	url     string
	st      *store.Store
	applier *recordingApplier
	srv     *Server
}

// bootstrappedStore opens a store on a fresh, bootstrapped database.
func bootstrappedStore(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DSN: pgtest.NewDatabase(t)})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(st.Close)
	if err := st.Bootstrap(ctx); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return st
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	st := bootstrappedStore(t)
	ap := &recordingApplier{}
	cfg := Config{Version: "3.9.1", NodeID: "11111111-1111-4111-8111-111111111111",
		Logger: zerolog.New(zerolog.NewTestWriter(t))}
	srv := New(cfg, st, ap)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &testEnv{t: t, url: hs.URL, st: st, applier: ap, srv: srv}
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (e *testEnv) do(method, path, contentType, body string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			e.t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, raw, err)
		}
	}
	return out
}

// json sends a JSON body.
func (e *testEnv) json(method, path, body string) response {
	e.t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return e.do(method, path, ct, body)
}

// mustStatus fails unless res has the wanted status.
func mustStatus(t *testing.T, res response, want int) {
	t.Helper()
	if res.status != want {
		t.Fatalf("got status %d, want %d (body %s)", res.status, want, res.raw)
	}
}

// jsonEqual compares a JSON text with a wanted JSON text structurally.
func jsonEqual(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("got %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %q: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("got body %s, want %s", gb, wb)
	}
}

func (e *testEnv) mustCreate(path, body string) map[string]any {
	e.t.Helper()
	res := e.json("POST", path, body)
	mustStatus(e.t, res, http.StatusCreated)
	return res.body
}
