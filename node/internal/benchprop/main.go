// Package main is the propagation benchmark behind scripts/bench-propagation:
// it starts real Grapevine nodes (the node package, as `grapevine start`
// runs it) on loopback addresses against a PostgreSQL the script started,
// makes changes on one node and measures when another node's proxy serves
// them, with gossip and with polling alone; then it times how long a
// change takes to be applied by every node of a 50-node cluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/node"
	"github.com/grapevine-gw/grapevine/node/config"
	"github.com/grapevine-gw/grapevine/node/internal/benchkit"
)

// report is where the figures go: the benchmark's output, not its log.
var report io.Writer = os.Stdout

type options struct {
	dsn        string
	changes    int
	interval   time.Duration
	frequency  time.Duration
	bigNodes   int
	bigChanges int
	skipGossip bool
}

func main() {
	var o options
	flag.StringVar(&o.dsn, "dsn", "", "PostgreSQL server to create the benchmark databases in (postgres://user@host:port/db)")
	flag.IntVar(&o.changes, "changes", 200, "changes per mode on the 3-node cluster")
	flag.DurationVar(&o.interval, "interval", 250*time.Millisecond, "time between changes")
	flag.DurationVar(&o.frequency, "db-update-frequency", 5*time.Second, "db_update_frequency of every node (Kong's default: 5s)")
	flag.IntVar(&o.bigNodes, "big-nodes", 50, "nodes of the in-process cluster")
	flag.IntVar(&o.bigChanges, "big-changes", 30, "changes timed on the big cluster")
	flag.BoolVar(&o.skipGossip, "skip-gossip", false, "skip the gossip mode (for a quick look at polling)")
	flag.Parse()
	benchkit.Main(zerolog.WarnLevel, 0, func(ctx context.Context, log zerolog.Logger) error { return run(ctx, o, log) })
}

func run(ctx context.Context, o options, log zerolog.Logger) error {
	up, err := benchkit.StartUpstream()
	if err != nil {
		return err
	}
	defer up.Close()
	fmt.Fprintf(report, "propagation: %d changes per mode, one every %s, 3 nodes; time from node A's 201 until node C's proxy serves the change\n", o.changes, o.interval)
	fmt.Fprintf(report, "%-28s %10s %10s %10s\n", "mode", "p50", "p99", "max")
	var gossipLat []time.Duration
	if !o.skipGossip {
		gossipLat, err = threeNodeRun(ctx, o, log, up.URL, true)
		if err != nil {
			return err
		}
		printRow(fmt.Sprintf("gossip + polling (%s)", o.frequency), gossipLat)
	}
	pollLat, err := threeNodeRun(ctx, o, log, up.URL, false)
	if err != nil {
		return err
	}
	printRow(fmt.Sprintf("polling only (%s)", o.frequency), pollLat)
	if o.skipGossip {
		return bigClusterRun(ctx, o, log, up.URL)
	}
	fmt.Fprintf(report, "gossip is %.0fx faster at p50 and %.0fx at p99\n",
		float64(percentile(pollLat, 50))/float64(percentile(gossipLat, 50)),
		float64(percentile(pollLat, 99))/float64(percentile(gossipLat, 99)))
	return bigClusterRun(ctx, o, log, up.URL)
}

func printRow(name string, d []time.Duration) {
	fmt.Fprintf(report, "%-28s %10s %10s %10s\n", name, benchkit.Ms(percentile(d, 50)), benchkit.Ms(percentile(d, 99)), benchkit.Ms(percentile(d, 100)))
}

func percentile(d []time.Duration, p int) time.Duration {
	sorted := append([]time.Duration(nil), d...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	idx := (len(sorted)*p + 99) / 100
	if idx < 1 {
		idx = 1
	}
	return sorted[idx-1]
}

// nodeConfig is a node on its own loopback host with Kong's port numbers.
func nodeConfig(dsn, host string, gossip bool, frequency time.Duration) config.Config {
	u, _ := url.Parse(dsn)
	cfg := config.Default()
	cfg.PgHost, cfg.PgUser, cfg.PgDatabase = u.Hostname(), u.User.Username(), strings.TrimPrefix(u.Path, "/")
	fmt.Sscan(u.Port(), &cfg.PgPort)
	cfg.PgMaxConns = 3
	cfg.ProxyListen = []string{host + ":8000"}
	cfg.AdminListen = []string{host + ":8001"}
	cfg.ClusterListen = ""
	if gossip {
		cfg.ClusterListen = host + ":7946"
	}
	cfg.DBUpdateFrequency = frequency
	return cfg
}

func startNodes(ctx context.Context, cfgs []config.Config, log zerolog.Logger) ([]*node.Node, func(), error) {
	var nodes []*node.Node
	stop := func() {
		for _, n := range nodes {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = n.Shutdown(shutdownCtx)
			cancel()
		}
	}
	for _, cfg := range cfgs {
		n := node.New(cfg, log)
		if err := n.Start(ctx); err != nil {
			stop()
			return nil, nil, fmt.Errorf("starting node on %s: %w", cfg.AdminListen[0], err)
		}
		nodes = append(nodes, n)
	}
	return nodes, stop, nil
}

// threeNodeRun measures, for each change made on node A, how long after
// the 201 node C's proxy serves it.
func threeNodeRun(ctx context.Context, o options, log zerolog.Logger, upstream string, gossip bool) ([]time.Duration, error) {
	dbName := "bench_polling"
	if gossip {
		dbName = "bench_gossip"
	}
	dsn, err := benchkit.FreshDatabase(ctx, o.dsn, dbName)
	if err != nil {
		return nil, err
	}
	hosts := []string{"127.0.6.1", "127.0.6.2", "127.0.6.3"}
	var cfgs []config.Config
	for _, h := range hosts {
		cfgs = append(cfgs, nodeConfig(dsn, h, gossip, o.frequency))
	}
	nodes, stop, err := startNodes(ctx, cfgs, log)
	if err != nil {
		return nil, err
	}
	defer stop()
	if gossip {
		if err := benchkit.WaitForMembers(nodes, len(nodes), 30*time.Second); err != nil {
			return nil, err
		}
	}
	a := "http://" + nodes[0].AdminAddr().String()
	c := "http://" + nodes[2].ProxyAddr().String()
	if err := post(a+"/services", `{"name":"bench","url":"`+upstream+`"}`); err != nil {
		return nil, err
	}
	return measureChanges(a, c, o)
}

// measureChanges makes o.changes route creations on admin at a steady pace
// while one watcher sweeps the pending paths on proxy.
func measureChanges(admin, proxy string, o options) ([]time.Duration, error) {
	created := make(chan pending, o.changes)
	errs := make(chan error, 1)
	go func() {
		defer close(created)
		for i := 0; i < o.changes; i++ {
			path := fmt.Sprintf("/bench-%d-%d", time.Now().UnixNano(), i)
			if err := post(admin+"/services/bench/routes", `{"paths":["`+path+`"]}`); err != nil {
				errs <- err
				return
			}
			created <- pending{path, time.Now()}
			time.Sleep(o.interval)
		}
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	var waiting []pending
	var latencies []time.Duration
	// Every change gets three polling intervals and some slack after the
	// last one was made.
	grace := 3*o.frequency + 10*time.Second
	lastCreated := time.Now()
	open := true
	for open || len(waiting) > 0 {
		if !open && time.Since(lastCreated) > grace {
			return nil, fmt.Errorf("%d of %d changes not served on node C %s after the last one was made, e.g. %s", len(waiting), o.changes, grace, waiting[0].path)
		}
		select {
		case err := <-errs:
			return nil, err
		case p, ok := <-created:
			if !ok {
				open, created = false, nil // a nil channel is never ready
			} else {
				waiting = append(waiting, p)
				lastCreated = p.created
			}
			continue
		default:
		}
		waiting = sweep(client, proxy, waiting, func(p pending) { latencies = append(latencies, time.Since(p.created)) })
		time.Sleep(200 * time.Microsecond)
	}
	return latencies, nil
}

// pending is a change made on the writer and not yet served by the reader.
type pending struct {
	path    string
	created time.Time
}

// sweep GETs every waiting path once and reports the ones now served.
func sweep(client *http.Client, proxy string, waiting []pending, served func(pending)) []pending {
	kept := waiting[:0]
	for _, p := range waiting {
		if status(client, proxy+p.path) == http.StatusOK {
			served(p)
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

func status(client *http.Client, target string) int {
	resp, err := client.Get(target)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func post(target, body string) error {
	resp, err := http.Post(target, "application/json", strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("POST %s: %w", target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		raw, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST %s: %d %s", target, resp.StatusCode, raw)
	}
	return nil
}

// bigClusterRun starts o.bigNodes nodes in this process and times, per
// change on node 0, how long until every node serves the new config hash.
func bigClusterRun(ctx context.Context, o options, log zerolog.Logger, upstream string) error {
	dsn, err := benchkit.FreshDatabase(ctx, o.dsn, "bench_big")
	if err != nil {
		return err
	}
	var cfgs []config.Config
	for i := 1; i <= o.bigNodes; i++ {
		cfgs = append(cfgs, nodeConfig(dsn, fmt.Sprintf("127.0.7.%d", i), true, o.frequency))
	}
	started := time.Now()
	nodes, stop, err := startNodes(ctx, cfgs, log)
	if err != nil {
		return err
	}
	defer stop()
	if err := benchkit.WaitForMembers(nodes, len(nodes), 60*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(report, "\n%d-node in-process cluster formed in %s\n", len(nodes), time.Since(started).Round(time.Millisecond))
	admin := "http://" + nodes[0].AdminAddr().String()
	if err := post(admin+"/services", `{"name":"bench","url":"`+upstream+`"}`); err != nil {
		return err
	}
	var all []time.Duration
	for i := 0; i < o.bigChanges; i++ {
		d, err := timeUntilAllApplied(nodes, admin, i)
		if err != nil {
			return err
		}
		all = append(all, d)
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintf(report, "%d changes, time from the 201 until all %d nodes applied it: p50 %s, p99 %s, max %s\n",
		len(all), len(nodes), benchkit.Ms(percentile(all, 50)), benchkit.Ms(percentile(all, 99)), benchkit.Ms(percentile(all, 100)))
	return nil
}

func timeUntilAllApplied(nodes []*node.Node, admin string, i int) (time.Duration, error) {
	if err := post(admin+"/services/bench/routes", fmt.Sprintf(`{"paths":["/big-%d"]}`, i)); err != nil {
		return 0, err
	}
	created := time.Now()
	want := nodes[0].ConfigHash()
	for time.Since(created) < 30*time.Second {
		done := true
		for _, n := range nodes {
			if n.ConfigHash() != want {
				done = false
				break
			}
		}
		if done {
			return time.Since(created), nil
		}
		time.Sleep(200 * time.Microsecond)
	}
	return 0, fmt.Errorf("change %d not applied on every node within 30s", i)
}
