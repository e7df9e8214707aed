// Package main is the consumers benchmark behind scripts/bench-consumers:
// it measures what many consumers, each with a key-auth key, cost a real
// `grapevine start` process (issue 16: "a million consumers with a key each
// must not make a route change slow or the snapshot huge"). It runs one node
// on an empty configuration (one service, a route with key-auth, one
// consumer), then loads N consumers with a key each straight into the
// database with COPY and starts the node again, and prints for both: the
// time from start until the proxy serves, the node's RSS, the size of its
// configuration cache, the time from a route's POST until the proxy serves
// it, and key-auth answers (random keys 200, a wrong key 401). Everything
// runs on loopback and is stopped before it returns. Not shipped.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/node/internal/benchkit"
)

type options struct {
	dsn       string
	bin       string
	consumers int
	host      string
	timeout   time.Duration
}

// report is where the figures go: the benchmark's output, not its log.
var report io.Writer = os.Stdout

func main() {
	var o options
	flag.StringVar(&o.dsn, "dsn", "", "PostgreSQL server to create the benchmark database in (postgres://user@host:port/db)")
	flag.StringVar(&o.bin, "bin", "", "the grapevine binary to start")
	flag.IntVar(&o.consumers, "consumers", 1000000, "consumers to load, each with a key-auth key")
	flag.StringVar(&o.host, "host", "127.0.31.1", "loopback address the node listens on")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "the whole run's bound")
	flag.Parse()
	benchkit.Main(zerolog.TraceLevel, o.timeout, func(ctx context.Context, log zerolog.Logger) error { return run(ctx, o, log) })
}

func run(ctx context.Context, o options, log zerolog.Logger) error {
	up, err := benchkit.StartUpstream()
	if err != nil {
		return err
	}
	defer up.Close()
	dsn, err := benchkit.FreshDatabase(ctx, o.dsn, "bench_consumers")
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "grapevine-bench-consumers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	conf, err := writeConf(work, dsn, o.host)
	if err != nil {
		return err
	}
	fmt.Fprintf(report, "consumers benchmark: one node on %s\n", o.host)

	n, err := startNode(ctx, o.bin, conf, work, log)
	if err != nil {
		return err
	}
	if err := n.waitAdmin(ctx); err != nil {
		n.stop()
		logTail(log, work)
		return err
	}
	err = seed(n, up.URL)
	if err == nil {
		err = measure(ctx, n, "empty", 1, conf)
	}
	n.stop()
	if err != nil {
		logTail(log, work)
		return err
	}

	log.Info().Int("consumers", o.consumers).Msg("loading consumers and keys with COPY")
	start := time.Now()
	if err := load(ctx, dsn, o.consumers); err != nil {
		return err
	}
	fmt.Fprintf(report, "%-46s %s\n", fmt.Sprintf("COPY %d consumers and %d keys", o.consumers, o.consumers), time.Since(start).Round(time.Millisecond))

	n, err = startNode(ctx, o.bin, conf, work, log)
	if err != nil {
		return err
	}
	defer n.stop()
	err = measure(ctx, n, strconv.Itoa(o.consumers), o.consumers+1, conf)
	if err != nil {
		logTail(log, work)
	}
	return err
}

// logTail logs the end of the node's log, to say why a run failed.
func logTail(log zerolog.Logger, work string) {
	if tail, err := os.ReadFile(filepath.Join(work, "node.log")); err == nil {
		log.Error().Str("node_log", lastLines(string(tail), 20)).Msg("the node's log")
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// writeConf writes the node's kong.conf: no gossip, Kong's polling.
func writeConf(work, dsn, host string) (string, error) {
	u, _ := url.Parse(dsn)
	conf := fmt.Sprintf("pg_host = %s\npg_port = %s\npg_user = %s\npg_database = %s\n"+
		"proxy_listen = %s:8000\nadmin_listen = %s:8001\ncluster_listen = off\nlog_level = warn\nprefix = %s\n",
		u.Hostname(), u.Port(), u.User.Username(), strings.TrimPrefix(u.Path, "/"), host, host, filepath.Join(work, "prefix"))
	if err := os.MkdirAll(filepath.Join(work, "prefix"), 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(work, "grapevine.conf")
	return path, os.WriteFile(path, []byte(conf), 0o644)
}

// seed makes the service, the key-auth route and consumer 0 with key k0.
func seed(n *nodeProc, upstream string) error {
	for _, call := range []struct{ path, body string }{
		{"/services", fmt.Sprintf(`{"name":"s","url":%q}`, upstream)},
		{"/services/s/routes", `{"name":"r","paths":["/r"]}`},
		{"/routes/r/plugins", `{"name":"key-auth"}`},
		{"/consumers", `{"username":"c0"}`},
		{"/consumers/c0/key-auth", `{"key":"k0"}`},
	} {
		if err := n.adminPost(call.path, call.body); err != nil {
			return err
		}
	}
	return nil
}

// measure prints one row of figures for a node that was just started.
func measure(ctx context.Context, n *nodeProc, label string, keys int, conf string) error {
	if err := n.waitServing(ctx, "/r", "k0"); err != nil {
		return err
	}
	served := time.Since(n.started)
	if err := n.waitAdmin(ctx); err != nil { // it opens just after the proxy
		return err
	}
	rss := n.rssMB()
	cachePath := filepath.Join(filepath.Dir(conf), "prefix", "grapevine.config.cache")
	// The whole configuration is written once after the start; the route
	// change is measured after it, as the one journal record it costs.
	initial, err := waitCache(ctx, cachePath, n.started)
	if err != nil {
		return err
	}
	changed := time.Now()
	change, err := n.routeChange(ctx, label)
	if err != nil {
		return err
	}
	var worst time.Duration // four more changes in a row, while the cache is written
	for i := range 4 {
		d, err := n.routeChange(ctx, fmt.Sprintf("%s-%d", label, i))
		if err != nil {
			return err
		}
		worst = max(worst, d)
	}
	ok, refused, lookup, err := n.keyLookups(keys)
	if err != nil {
		return err
	}
	cache, err := waitCache(ctx, cachePath, changed)
	if err != nil {
		return err
	}
	fmt.Fprintf(report, "%-8s start to serving %-8s RSS %6.1f MB  route change live %-8s (next 4: worst %-8s) cache %6.1f MB (journal %.1f KB; base written %s after start) written %-8s after it  RSS then %6.1f MB  keys: %d random 200, wrong 401 %v (median %s)\n",
		label+":", served.Round(time.Millisecond), rss, benchkit.Ms(change), benchkit.Ms(worst), float64(cache.base+cache.journal)/(1<<20), float64(cache.journal)/1024,
		initial.baseAt.Sub(n.started).Round(time.Millisecond), cache.journalAt.Sub(changed).Round(time.Millisecond), n.rssMB(), ok, refused, lookup.Round(time.Microsecond))
	return nil
}

// cacheFiles are the sizes and times of the node's configuration cache.
type cacheFiles struct {
	base, journal     int64
	baseAt, journalAt time.Time
}

// waitCache waits until the node's configuration cache is written after
// since (it is written off the applier, at most every 0.5 s): a change is
// a record appended to the journal beside the base at path (a whole base
// is followed by a new journal too).
func waitCache(ctx context.Context, path string, since time.Time) (cacheFiles, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		base, err := os.Stat(path)
		journal, jerr := os.Stat(path + ".journal")
		if err == nil && jerr == nil && journal.ModTime().After(since) {
			return cacheFiles{base: base.Size(), journal: journal.Size(), baseAt: base.ModTime(), journalAt: journal.ModTime()}, nil
		}
		if time.Now().After(deadline) {
			return cacheFiles{}, fmt.Errorf("the node's configuration cache %s is not written after 2 minutes (%v, %v)", path, err, jerr)
		}
		select {
		case <-ctx.Done():
			return cacheFiles{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// load COPYs n consumers c1..cn, each with key k1..kn, into the tables as
// the store writes them (see store.TableOf and migrations 003 and 008).
func load(ctx context.Context, dsn string, n int) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", dsn, err)
	}
	defer conn.Close(ctx)
	now := time.Now().Unix()
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.New()
	}
	consumers := pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		id := ids[i].String()
		name := "c" + strconv.Itoa(i+1)
		doc := fmt.Sprintf(`{"id":%q,"tags":null,"username":%q,"custom_id":null,"created_at":%d,"updated_at":%d}`, id, name, now, now)
		return []any{id, name, now, now, doc}, nil
	})
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"consumers"}, []string{"id", "username", "created_at", "updated_at", "doc"}, consumers); err != nil {
		return fmt.Errorf("copy consumers: %w", err)
	}
	keys := pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		id, cid := uuid.NewString(), ids[i].String()
		key := "k" + strconv.Itoa(i+1)
		doc := fmt.Sprintf(`{"id":%q,"key":%q,"tags":null,"consumer":{"id":%q},"created_at":%d}`, id, key, cid, now)
		return []any{id, key, cid, now, doc}, nil
	})
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"keyauth_credentials"}, []string{"id", "key", "consumer_id", "created_at", "doc"}, keys); err != nil {
		return fmt.Errorf("copy keys: %w", err)
	}
	_, err = conn.Exec(ctx, "ANALYZE consumers; ANALYZE keyauth_credentials")
	return err
}

// nodeProc is a running `grapevine start`.
type nodeProc struct {
	cmd     *exec.Cmd
	started time.Time
	admin   string
	proxy   string
	done    chan error
}

var client = &http.Client{Timeout: 10 * time.Second}

func startNode(ctx context.Context, bin, conf, work string, log zerolog.Logger) (*nodeProc, error) {
	u, err := confAddrs(conf)
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(work, "node.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "start", "-c", conf)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	n := &nodeProc{cmd: cmd, admin: "http://" + u + ":8001", proxy: "http://" + u + ":8000", done: make(chan error, 1)}
	n.started = time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { n.done <- cmd.Wait(); logFile.Close() }()
	log.Info().Int("pid", cmd.Process.Pid).Msg("node started")
	return n, nil
}

// confAddrs is the host the conf's listeners use.
func confAddrs(conf string) (string, error) {
	raw, err := os.ReadFile(conf)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "proxy_listen = "); ok {
			host, _, _ := strings.Cut(v, ":")
			return host, nil
		}
	}
	return "", fmt.Errorf("%s: no proxy_listen", conf)
}

// stop ends the node with SIGTERM (SIGKILL after 15 s) and waits for it.
func (n *nodeProc) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(15 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

func (n *nodeProc) waitAdmin(ctx context.Context) error {
	return n.poll(ctx, func() bool {
		resp, err := client.Get(n.admin + "/status")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func (n *nodeProc) waitServing(ctx context.Context, path, key string) error {
	return n.poll(ctx, func() bool { return n.get(path, key) == 200 })
}

// poll retries ready every 5 ms until it holds, the node exits or ctx ends.
func (n *nodeProc) poll(ctx context.Context, ready func() bool) error {
	for !ready() {
		select {
		case err := <-n.done:
			n.done <- err
			return fmt.Errorf("the node exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func (n *nodeProc) adminPost(path, body string) error {
	resp, err := client.Post(n.admin+path, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		return fmt.Errorf("POST %s: got %d, want 201", path, resp.StatusCode)
	}
	return nil
}

// get is GET path through the proxy with an apikey ("" for none).
func (n *nodeProc) get(path, key string) int {
	req, _ := http.NewRequest(http.MethodGet, n.proxy+path, nil)
	if key != "" {
		req.Header.Set("apikey", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// routeChange POSTs a route and times until the proxy serves it.
func (n *nodeProc) routeChange(ctx context.Context, label string) (time.Duration, error) {
	path := "/after-" + label
	start := time.Now()
	if err := n.adminPost("/services/s/routes", fmt.Sprintf(`{"paths":[%q]}`, path)); err != nil {
		return 0, err
	}
	if err := n.waitServing(ctx, path, "k0"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// keyLookups sends 20 random keys of the keys loaded (each must answer
// 200) and a wrong one (401); it returns how many answered 200, whether
// the wrong one got 401 and the median time of the good ones.
func (n *nodeProc) keyLookups(keys int) (int, bool, time.Duration, error) {
	var times []time.Duration
	for range 20 {
		key := "k" + strconv.Itoa(rand.IntN(keys))
		start := time.Now()
		if got := n.get("/r", key); got != 200 {
			return 0, false, 0, fmt.Errorf("key %s: got %d, want 200", key, got)
		}
		times = append(times, time.Since(start))
	}
	if got := n.get("/r", "no-such-key"); got != 401 {
		return 0, false, 0, fmt.Errorf("a wrong key: got %d, want 401", got)
	}
	return len(times), true, median(times), nil
}

func median(d []time.Duration) time.Duration {
	for i := range d {
		for j := i + 1; j < len(d); j++ {
			if d[j] < d[i] {
				d[i], d[j] = d[j], d[i]
			}
		}
	}
	return d[len(d)/2]
}

// rssMB is the node's resident memory (VmRSS).
func (n *nodeProc) rssMB() float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
