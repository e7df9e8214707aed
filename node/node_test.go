package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/internal/pgtest"
	"github.com/grapevine-gw/grapevine/node/config"
	"github.com/grapevine-gw/grapevine/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testConfig points a node at the database behind dsn, with every port
// chosen by the kernel on loopback.
func testConfig(t testing.TB, dsn string) config.Config {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parsing dsn: %v", err)
	}
	port, _ := strconv.Atoi(u.Port())
	cfg := config.Default()
	cfg.PgHost, cfg.PgPort, cfg.PgUser = u.Hostname(), port, u.User.Username()
	cfg.PgDatabase = strings.TrimPrefix(u.Path, "/")
	cfg.ProxyListen = []string{"127.0.0.1:0"}
	cfg.AdminListen = []string{"127.0.0.1:0"}
	cfg.ClusterListen = ""   // single-node tests run without gossip
	cfg.Prefix = t.TempDir() // the node's own folder, as Kong's prefix
	return cfg
}

// bootstrappedDatabase makes a fresh database with Grapevine's schema.
func bootstrappedDatabase(t testing.TB) string {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DSN: dsn})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	defer st.Close()
	if err := st.Bootstrap(ctx); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return dsn
}

// startNode starts a node and stops it when the test ends.
func startNode(t *testing.T, cfg config.Config) *Node {
	t.Helper()
	n := New(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	if err := n.Start(context.Background()); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	t.Cleanup(func() { stopNode(t, n) })
	return n
}

func stopNode(t *testing.T, n *Node) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// upstream is a real HTTP server that records the paths it was asked for.
type upstream struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.paths = append(u.paths, r.URL.RequestURI())
		u.mu.Unlock()
		fmt.Fprintf(w, "upstream saw %s", r.URL.RequestURI())
	}))
	t.Cleanup(u.Close)
	return u
}

func adminDo(t *testing.T, n *Node, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.AdminAddr().String()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var decoded map[string]any
	_ = json.Unmarshal(raw, &decoded)
	return resp.StatusCode, decoded
}

func mustAdmin(t *testing.T, n *Node, wantStatus int, method, path, body string) map[string]any {
	t.Helper()
	status, decoded := adminDo(t, n, method, path, body)
	if status != wantStatus {
		t.Fatalf("%s %s: got status %d (%v), want %d", method, path, status, decoded, wantStatus)
	}
	return decoded
}

func proxyGet(t *testing.T, n *Node, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + n.ProxyAddr().String() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAdminWriteIsLiveOnTheNextRequest(t *testing.T) {
	n := startNode(t, testConfig(t, bootstrappedDatabase(t)))
	up := newUpstream(t)

	mustAdmin(t, n, 201, "POST", "/services", `{"name":"echo","url":"`+up.URL+`"}`)
	mustAdmin(t, n, 201, "POST", "/services/echo/routes", `{"name":"r1","paths":["/echo"]}`)
	steps := []struct {
		name       string
		write      func()
		path       string
		wantStatus int
		wantBody   string
	}{
		{"created route serves", nil, "/echo/hello?x=1", 200, "upstream saw /hello?x=1"},
		{"unmatched path is 404", nil, "/nope", 404, "no Route matched with those values"},
		{"patched path serves at once", func() {
			mustAdmin(t, n, 200, "PATCH", "/routes/r1", `{"paths":["/other"],"strip_path":false}`)
		}, "/other/x", 200, "upstream saw /other/x"},
		{"old path gone at once", nil, "/echo/hello", 404, "no Route matched"},
		{"status counts the proxy's requests", func() {
			server := mustAdmin(t, n, 200, "GET", "/status", "")["server"].(map[string]any)
			if server["total_requests"].(float64) < 4 || server["connections_accepted"].(float64) < 1 {
				t.Errorf("GET /status server block: got %v, want at least the 4 requests made so far", server)
			}
		}, "/other/x", 200, "upstream saw /other/x"},
		{"deleted route gone at once", func() {
			mustAdmin(t, n, 204, "DELETE", "/routes/r1", "")
		}, "/other/x", 404, "no Route matched"},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if step.write != nil {
				step.write()
			}
			status, body := proxyGet(t, n, step.path)
			if status != step.wantStatus || !strings.Contains(body, step.wantBody) {
				t.Fatalf("GET %s: got %d %q, want %d containing %q", step.path, status, body, step.wantStatus, step.wantBody)
			}
		})
	}
}

func TestRestartServesStoredConfigFromTheFirstRequest(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	up := newUpstream(t)
	first := startNode(t, testConfig(t, dsn))
	mustAdmin(t, first, 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`/base"}`)
	mustAdmin(t, first, 201, "POST", "/services/s/routes", `{"paths":["/api"]}`)
	stopNode(t, first)

	second := startNode(t, testConfig(t, dsn))
	status, body := proxyGet(t, second, "/api/v1")
	if status != 200 || body != "upstream saw /base/v1" {
		t.Fatalf("got %d %q, want 200 %q", status, body, "upstream saw /base/v1")
	}
}

func TestStartRefusesAnUnmigratedDatabase(t *testing.T) {
	n := New(testConfig(t, pgtest.NewDatabase(t)), zerolog.Nop())
	err := n.Start(context.Background())
	if err == nil {
		stopNode(t, n)
		t.Fatal("got a started node, want an error about migrations")
	}
	if !strings.Contains(err.Error(), "migrations bootstrap") {
		t.Fatalf("got %v, want it to tell the user to run migrations bootstrap", err)
	}
}

func TestProxyKeepsServingWithoutTheDatabase(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	n := startNode(t, testConfig(t, dsn))
	up := newUpstream(t)
	mustAdmin(t, n, 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`"}`)
	mustAdmin(t, n, 201, "POST", "/services/s/routes", `{"paths":["/api"]}`)

	cutOffDatabase(t, dsn)
	for i := 0; i < 20; i++ {
		if status, body := proxyGet(t, n, "/api/x"); status != 200 {
			t.Fatalf("request %d: got %d %q, want 200 while the database is gone", i, status, body)
		}
	}
	status, body := adminDo(t, n, "POST", "/services", `{"name":"late","url":"http://127.0.0.1:1"}`)
	if status < 500 {
		t.Fatalf("admin write without a database: got %d %v, want a 5xx error", status, body)
	}
}

// cutOffDatabase makes the test's database refuse connections and ends the
// ones it has, as if the server had gone away for this node.
func cutOffDatabase(t *testing.T, dsn string) {
	t.Helper()
	u, _ := url.Parse(dsn)
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("connecting as admin: %v", err)
	}
	defer conn.Close(ctx)
	statements := []string{
		fmt.Sprintf(`ALTER DATABASE %s ALLOW_CONNECTIONS false`, pgx.Identifier{name}.Sanitize()),
		`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '` + name + `' AND pid <> pg_backend_pid()`,
	}
	for _, stmt := range statements {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, u.String())
		if err == nil {
			_, _ = c.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s ALLOW_CONNECTIONS true`, pgx.Identifier{name}.Sanitize()))
			c.Close(ctx)
		}
	})
}

func TestClusterViewWithGossipOff(t *testing.T) {
	n := startNode(t, testConfig(t, bootstrappedDatabase(t)))
	status := mustAdmin(t, n, 200, "GET", "/cluster", "")
	members, _ := status["data"].([]any)
	if status["gossip"] != false || len(members) != 1 {
		t.Fatalf("got %v, want gossip false and this node alone (from the registry)", status)
	}
	if m := members[0].(map[string]any); m["name"] != n.Name() || m["status"] != "alive" || m["config_hash"] != n.ConfigHash() {
		t.Fatalf("got member %v, want this node alive with hash %s", m, n.ConfigHash())
	}
	for _, path := range []string{"/cluster/reachability", "/cluster/keys"} {
		body := mustAdmin(t, n, 400, "GET", path, "")
		if !strings.Contains(fmt.Sprint(body["message"]), "cluster_listen = off") {
			t.Errorf("GET %s: got %v, want a message naming cluster_listen = off", path, body)
		}
	}
}
