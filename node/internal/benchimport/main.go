// Package main is the import benchmark behind scripts/bench-import: it
// writes a declarative file of N services, each with a route, a key-auth
// plugin and a consumer with a key, imports it as `grapevine config
// db_import` does (parse, validate, one transaction, one reload event)
// into the database of a running 3-node cluster, and times the import and
// how long after the commit every node's proxy serves all of it; then how
// long one route change made on one node afterwards takes to be served by
// another.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/entity/declarative"
	"github.com/grapevine-gw/grapevine/node"
	"github.com/grapevine-gw/grapevine/node/config"
	"github.com/grapevine-gw/grapevine/node/internal/benchkit"
	"github.com/grapevine-gw/grapevine/store"
)

type options struct {
	dsn       string
	services  int
	frequency time.Duration
}

// report is where the figures go: the benchmark's output, not its log.
var report io.Writer = os.Stdout

func main() {
	var o options
	flag.StringVar(&o.dsn, "dsn", "", "PostgreSQL server to create the benchmark database in (postgres://user@host:port/db)")
	flag.IntVar(&o.services, "services", 10000, "services in the file, each with a route, a plugin and a consumer with a key")
	flag.DurationVar(&o.frequency, "db-update-frequency", 5*time.Second, "db_update_frequency of every node (Kong's default: 5s)")
	flag.Parse()
	benchkit.Main(zerolog.WarnLevel, 0, func(ctx context.Context, log zerolog.Logger) error { return run(ctx, o, log) })
}

func run(ctx context.Context, o options, log zerolog.Logger) error {
	up, err := benchkit.StartUpstream()
	if err != nil {
		return err
	}
	defer up.Close()
	dsn, err := benchkit.FreshDatabase(ctx, o.dsn, "bench_import")
	if err != nil {
		return err
	}
	nodes, stop, err := startNodes(ctx, dsn, o.frequency, log)
	if err != nil {
		return err
	}
	defer stop()
	if err := benchkit.WaitForMembers(nodes, 3, 30*time.Second); err != nil {
		return err
	}
	doc := document(o.services, up.URL)
	fmt.Fprintf(report, "import: %d services, each with a route, a key-auth plugin and a consumer with a key (%d entities, %.1f MB of YAML); 3 nodes, db_update_frequency %s\n",
		o.services, 5*o.services, float64(len(doc))/1e6, o.frequency)

	start := time.Now()
	cfg, err := declarative.Parse(doc)
	if err != nil {
		return err
	}
	parsed := time.Since(start)
	committed, err := importConfig(ctx, dsn, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(report, "%-44s %s (parse and validate %s, transaction %s)\n", "import (parse, validate, commit)", benchkit.Ms(committed.Sub(start)), benchkit.Ms(parsed), benchkit.Ms(committed.Sub(start)-parsed))

	cpuAtCommit := processCPU()
	last := o.services - 1
	for i, n := range nodes {
		proxy := "http://" + n.ProxyAddr().String()
		if err := waitServed(proxy, last, 60*time.Second); err != nil {
			return err
		}
		fmt.Fprintf(report, "%-44s %s\n", fmt.Sprintf("node %d serves the last service", i+1), benchkit.Ms(time.Since(committed)))
	}
	// The nodes' CPU time (this process's, polling included) stays put
	// while other work shares the machine, where the times above do not.
	fmt.Fprintf(report, "%-44s %s\n", "CPU of this process meanwhile", benchkit.Ms(processCPU()-cpuAtCommit))
	for _, n := range nodes {
		if err := checkSample(n, o.services); err != nil {
			return err
		}
	}
	fmt.Fprintf(report, "%-44s checked\n", "every node serves a sample of 100 services")
	return routeChange(nodes)
}

// document is the declarative file: service i with route /s<i>, key-auth
// and consumer c<i> with key k<i>.
func document(n int, upstream string) []byte {
	var b strings.Builder
	b.WriteString("_format_version: \"3.0\"\nservices:\n")
	for i := range n {
		fmt.Fprintf(&b, "- name: s%d\n  url: %s\n  routes:\n  - name: r%d\n    paths: [/s%d]\n  plugins:\n  - name: key-auth\n", i, upstream, i, i)
	}
	b.WriteString("consumers:\n")
	for i := range n {
		fmt.Fprintf(&b, "- username: c%d\n  keyauth_credentials:\n  - key: k%d\n", i, i)
	}
	return []byte(b.String())
}

// importConfig is `grapevine config db_import`'s database part; it
// returns when the transaction committed.
func importConfig(ctx context.Context, dsn string, cfg *declarative.Config) (time.Time, error) {
	st, err := store.Open(ctx, store.Config{DSN: dsn, NodeID: "bench-import"})
	if err != nil {
		return time.Time{}, err
	}
	defer st.Close()
	var data []store.TableRows
	for _, kd := range cfg.Kinds {
		rows, err := store.RowsOf(kd.Kind, kd.Docs)
		if err != nil {
			return time.Time{}, err
		}
		data = append(data, store.TableRows{Table: store.TableOf(kd.Kind), Rows: rows})
	}
	if _, err := st.UpsertAll(ctx, data); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

func waitServed(proxy string, i int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for status(proxy, i) != 200 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not serve service %d after %s", proxy, i, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

var client = &http.Client{Timeout: 5 * time.Second}

// status is GET /s<i> with consumer i's key.
func status(proxy string, i int) int {
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/s%d", proxy, i), nil)
	req.Header.Set("apikey", fmt.Sprintf("k%d", i))
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func checkSample(n *node.Node, services int) error {
	proxy := "http://" + n.ProxyAddr().String()
	for j := 0; j < 100; j++ {
		i := j * services / 100
		if got := status(proxy, i); got != 200 {
			return fmt.Errorf("%s: service %d answers %d, want 200", proxy, i, got)
		}
	}
	return nil
}

// routeChange adds one route on node 1 and times until node 3 serves it.
func routeChange(nodes []*node.Node) error {
	admin := "http://" + nodes[0].AdminAddr().String()
	resp, err := client.Post(admin+"/services/s0/routes", "application/json", strings.NewReader(`{"name":"after","paths":["/after"]}`))
	if err != nil {
		return err
	}
	resp.Body.Close()
	created := time.Now()
	if resp.StatusCode != 201 {
		return fmt.Errorf("POST a route: %d", resp.StatusCode)
	}
	proxy := "http://" + nodes[2].ProxyAddr().String()
	deadline := created.Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, proxy+"/after", nil)
		req.Header.Set("apikey", "k0")
		if r, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, r.Body)
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node 3 does not serve the new route after 30s")
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Fprintf(report, "%-44s %s\n", "one route change on node 1, served by node 3", benchkit.Ms(time.Since(created)))
	return nil
}

// startNodes starts three gossiping nodes on 127.0.7.1-3 with Kong's ports.
func startNodes(ctx context.Context, dsn string, frequency time.Duration, log zerolog.Logger) ([]*node.Node, func(), error) {
	// Each node has a prefix of its own, as on a machine of its own: with
	// the default one the three wrote their configuration caches to the
	// same file (/usr/local/kong), each clobbering the others', and could
	// start from a cache another run left there.
	prefixes, err := os.MkdirTemp("", "grapevine-bench-import-")
	if err != nil {
		return nil, nil, err
	}
	var nodes []*node.Node
	stop := func() {
		for _, n := range nodes {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = n.Shutdown(shutdownCtx)
			cancel()
		}
		_ = os.RemoveAll(prefixes)
	}
	u, _ := url.Parse(dsn)
	for _, host := range []string{"127.0.7.1", "127.0.7.2", "127.0.7.3"} {
		cfg := config.Default()
		cfg.PgHost, cfg.PgUser, cfg.PgDatabase = u.Hostname(), u.User.Username(), strings.TrimPrefix(u.Path, "/")
		fmt.Sscan(u.Port(), &cfg.PgPort)
		cfg.PgMaxConns = 3
		cfg.ProxyListen = []string{host + ":8000"}
		cfg.AdminListen = []string{host + ":8001"}
		cfg.ClusterListen = host + ":7946"
		cfg.DBUpdateFrequency = frequency
		cfg.Prefix = filepath.Join(prefixes, host)
		if err := os.Mkdir(cfg.Prefix, 0o700); err != nil {
			stop()
			return nil, nil, err
		}
		n := node.New(cfg, log)
		if err := n.Start(ctx); err != nil {
			stop()
			return nil, nil, fmt.Errorf("starting node on %s: %w", host, err)
		}
		nodes = append(nodes, n)
	}
	return nodes, stop, nil
}
