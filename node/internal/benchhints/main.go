// Package main is the forged-hint benchmark behind scripts/bench-forged-hints:
// one real node (the node package, as `grapevine start` runs it) on
// loopback against a PostgreSQL the script started, with steady keep-alive
// load through its proxy, first alone, then while a gossip member floods
// it with valid-looking invalidation hints (serf user events naming
// entities that do not exist, under event ids never committed), and with
// -encrypt also while a host without the key sends it forged unencrypted
// packets. For each phase it prints the proxy's p50/p99 and how many
// transactions the node ran on the database (pg_stat_database, so the
// node's own heartbeat and polling count too; compare with the quiet
// phase). A measurement, not a test: the figures move with the machine.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/internal/keepload"
	"github.com/grapevine-gw/grapevine/node"
	"github.com/grapevine-gw/grapevine/node/config"
	"github.com/grapevine-gw/grapevine/node/internal/benchkit"
)

var report io.Writer = os.Stdout

type options struct {
	dsn      string
	rate     int
	duration time.Duration
	clients  int
	encrypt  bool
	profile  string
	rounds   int
}

func main() {
	var o options
	flag.StringVar(&o.dsn, "dsn", "", "PostgreSQL server to create the benchmark database in")
	flag.IntVar(&o.rate, "rate", 10000, "forged hints per second")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each phase")
	flag.IntVar(&o.clients, "clients", 8, "keep-alive load clients")
	flag.BoolVar(&o.encrypt, "encrypt", false, "set cluster_encrypt_key, and add a phase of unencrypted forged packets")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of every phase, interleaved (the summary takes each phase's median)")
	flag.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of each phase to this directory (phase-N.pprof)")
	flag.Parse()
	benchkit.Main(zerolog.ErrorLevel, 0, func(ctx context.Context, log zerolog.Logger) error { return run(ctx, o, log) })
}

const (
	nodeHost   = "127.0.74.30"
	forgerHost = "127.0.74.31"
	strayHost  = "127.0.74.32"
	voidHost   = "127.0.74.33"
)

func run(ctx context.Context, o options, logger zerolog.Logger) error {
	up, err := benchkit.StartUpstream()
	if err != nil {
		return err
	}
	defer up.Close()
	dsn, err := benchkit.FreshDatabase(ctx, o.dsn, "bench_hints")
	if err != nil {
		return err
	}
	var key []byte
	if o.encrypt {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	n, err := startNode(ctx, dsn, key, logger)
	if err != nil {
		return err
	}
	defer n.Shutdown(context.Background())
	if err := configure(n, up.URL); err != nil {
		return err
	}
	forger, target, err := joinForger(n, key)
	if err != nil {
		return err
	}
	defer forger.Shutdown()

	fmt.Fprintf(report, "one node, %d keep-alive clients on its proxy, %s per phase, %d rounds, forged hints at %d/s (encrypted gossip: %v)\n", o.clients, o.duration, o.rounds, o.rate, o.encrypt)
	var events [][]byte // this round's flood, fresh Lamport times each round
	phases := []struct {
		name  string
		flood func(stop <-chan struct{}) int64
	}{
		{"quiet", nil},
		// The sender runs in this process on the same cores: this phase
		// sends the same flood to an address no one listens on, to show
		// what the sending alone costs the proxy.
		{"hints sent to no one (the sender's own cost)", func(stop <-chan struct{}) int64 {
			return floodHints(forger, &memberlist.Node{Name: "void", Addr: net.ParseIP(voidHost), Port: 7946}, o.rate, events, stop)
		}},
		{"hints from a member", func(stop <-chan struct{}) int64 { return floodHints(forger, target, o.rate, events, stop) }},
	}
	if o.encrypt {
		phases = append(phases, struct {
			name  string
			flood func(stop <-chan struct{}) int64
		}{"unencrypted forged packets", func(stop <-chan struct{}) int64 { return floodStray(nodeHost+":7946", o.rate, events, stop) }})
	}
	results := make([][]keepload.Result, len(phases))
	for round := range o.rounds {
		events = forgeEvents(o.rate, o.duration, round)
		for i, p := range phases {
			fmt.Fprintf(report, "-- round %d\n", round+1)
			res, err := phase(ctx, o, n, dsn, p.name, p.flood, profilePath(o.profile, round, i))
			if err != nil {
				return err
			}
			results[i] = append(results[i], res)
		}
	}
	fmt.Fprintf(report, "== summary: each phase's median over %d rounds, p99 against quiet's\n", o.rounds)
	quiet := medianP99(results[0])
	for i, p := range phases {
		p99 := medianP99(results[i])
		fmt.Fprintf(report, "%-45s p99 %-9v %.2fx quiet   %.0f requests/s\n", p.name, p99, float64(p99)/float64(quiet), medianRate(results[i], o.duration))
	}
	return nil
}

// medianP99 is the median of the rounds' p99 latencies.
func medianP99(rounds []keepload.Result) time.Duration {
	p99s := make([]time.Duration, len(rounds))
	for i, r := range rounds {
		p99s[i] = r.Percentile(0.99)
	}
	slices.Sort(p99s)
	return p99s[len(p99s)/2]
}

// medianRate is the median of the rounds' answered requests a second.
func medianRate(rounds []keepload.Result, d time.Duration) float64 {
	rates := make([]float64, len(rounds))
	for i, r := range rounds {
		rates[i] = float64(len(r.Latencies)) / d.Seconds()
	}
	slices.Sort(rates)
	return rates[len(rates)/2]
}

func startNode(ctx context.Context, dsn string, key []byte, logger zerolog.Logger) (*node.Node, error) {
	u, _ := url.Parse(dsn)
	cfg := config.Default()
	cfg.PgHost, cfg.PgUser, cfg.PgDatabase = u.Hostname(), u.User.Username(), strings.TrimPrefix(u.Path, "/")
	fmt.Sscanf(u.Port(), "%d", &cfg.PgPort)
	cfg.ProxyListen = []string{nodeHost + ":8000"}
	cfg.AdminListen = []string{nodeHost + ":8001"}
	cfg.ClusterListen = nodeHost + ":7946"
	if key != nil {
		cfg.ClusterEncryptKey = base64.StdEncoding.EncodeToString(key)
	}
	dir, err := os.MkdirTemp("", "bench-hints-")
	if err != nil {
		return nil, err
	}
	cfg.Prefix = dir
	n := node.New(cfg, logger)
	if err := n.Start(ctx); err != nil {
		return nil, fmt.Errorf("starting the node: %w", err)
	}
	return n, nil
}

func configure(n *node.Node, upstream string) error {
	admin := "http://" + n.AdminAddr().String()
	for _, req := range []struct{ path, body string }{
		{"/services", `{"name":"s","url":"` + upstream + `"}`},
		{"/services/s/routes", `{"paths":["/"]}`},
	} {
		resp, err := http.Post(admin+req.path, "application/json", strings.NewReader(req.body))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			return fmt.Errorf("POST %s: %d", req.path, resp.StatusCode)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		resp, err := http.Get("http://" + n.ProxyAddr().String() + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the route does not serve")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// joinForger joins a bare memberlist member (with the key, if any) to
// the node: a member in good standing that sends what it likes.
func joinForger(n *node.Node, key []byte) (*memberlist.Memberlist, *memberlist.Node, error) {
	conf := memberlist.DefaultLANConfig()
	conf.Name = "forger"
	conf.BindAddr, conf.BindPort = forgerHost, 7946
	conf.AdvertiseAddr, conf.AdvertisePort = forgerHost, 7946
	conf.Logger = log.New(io.Discard, "", 0)
	// A forger sends cheaply: LZW-compressing every message cost the
	// sender, on the node's own cores, a third of the machine.
	conf.EnableCompression = false
	// serf's delegate protocol range (serf v0.11: 2 to 5, speaking 4),
	// or the node refuses the member.
	conf.DelegateProtocolVersion, conf.DelegateProtocolMin, conf.DelegateProtocolMax = 4, 2, 5
	if key != nil {
		kr, err := memberlist.NewKeyring(nil, key)
		if err != nil {
			return nil, nil, err
		}
		conf.Keyring = kr
	}
	ml, err := memberlist.Create(conf)
	if err != nil {
		return nil, nil, fmt.Errorf("starting the forging member: %w", err)
	}
	if _, err := ml.Join([]string{nodeHost + ":7946"}); err != nil {
		ml.Shutdown()
		return nil, nil, fmt.Errorf("joining the node: %w", err)
	}
	for _, m := range ml.Members() {
		if m.Name != conf.Name {
			return ml, m, nil
		}
	}
	ml.Shutdown()
	return nil, nil, fmt.Errorf("the node is not among the forger's members")
}

// serfUserEvent is serf's user event message (as gossip/direct.go sends it).
type serfUserEvent struct {
	LTime   uint64
	Name    string
	Payload []byte
	CC      bool
}

func forgedEvent(i int64) []byte {
	var buf bytes.Buffer
	buf.WriteByte(3) // serf's messageUserEventType
	payload := fmt.Sprintf("v1|%d|routes|00000000-0000-4000-8000-%012d|update|forger", 1_000_000_000+i, i)
	_ = codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(&serfUserEvent{LTime: uint64(1_000_000 + i), Name: "gv-inv", Payload: []byte(payload)})
	return buf.Bytes()
}

// forgeEvents encodes a phase's worth of forged events before it starts,
// so the flood costs the sender a system call a message and no encoding:
// the sender shares the node's cores, and its share should be small.
func forgeEvents(rate int, d time.Duration, round int) [][]byte {
	n := int(float64(rate)*(d+time.Second).Seconds()) + 1
	events := make([][]byte, n)
	for i := range events {
		events[i] = forgedEvent(int64(round*n + i))
	}
	return events
}

// paced calls send rate times a second, in 1 ms batches, until stop or
// until limit calls.
func paced(rate int, limit int64, stop <-chan struct{}, send func(i int64)) int64 {
	var i int64
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	began := time.Now()
	for {
		select {
		case <-stop:
			return i
		case <-tick.C:
		}
		due := min(int64(time.Since(began).Seconds()*float64(rate)), limit)
		for ; i < due; i++ {
			send(i)
		}
	}
}

func floodHints(ml *memberlist.Memberlist, to *memberlist.Node, rate int, events [][]byte, stop <-chan struct{}) int64 {
	return paced(rate, int64(len(events)), stop, func(i int64) { _ = ml.SendBestEffort(to, events[i]) })
}

// floodStray sends the same events, unencrypted, as memberlist user
// messages from a host that is no member.
func floodStray(target string, rate int, events [][]byte, stop <-chan struct{}) int64 {
	raddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return 0
	}
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(strayHost)}, raddr)
	if err != nil {
		return 0
	}
	defer conn.Close()
	packets := make([][]byte, len(events))
	for i, ev := range events {
		packets[i] = append([]byte{8}, ev...) // memberlist's userMsg
	}
	return paced(rate, int64(len(packets)), stop, func(i int64) { _, _ = conn.Write(packets[i]) })
}

// profilePath names a round's phase i CPU profile in dir, or "" for none.
func profilePath(dir string, round, i int) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, fmt.Sprintf("round-%d-phase-%d.pprof", round+1, i))
}

func phase(ctx context.Context, o options, n *node.Node, dsn, name string, flood func(<-chan struct{}) int64, profile string) (keepload.Result, error) {
	before, err := transactions(ctx, dsn)
	if err != nil {
		return keepload.Result{}, err
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return keepload.Result{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return keepload.Result{}, err
		}
	}
	load := keepload.Start([]string{n.ProxyAddr().String()}, o.clients)
	stop := make(chan struct{})
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		if flood != nil {
			sent.Store(flood(stop))
		}
	}()
	time.Sleep(o.duration)
	close(stop)
	<-done
	res := load.Stop()
	if profile != "" {
		pprof.StopCPUProfile()
	}
	time.Sleep(1500 * time.Millisecond) // PostgreSQL publishes its counters within a second
	after, err := transactions(ctx, dsn)
	if err != nil {
		return keepload.Result{}, err
	}
	res.Print(report, fmt.Sprintf("== %s: %d forged messages sent", name, sent.Load()))
	fmt.Fprintf(report, "database transactions during the phase: %d (%.1f/s)\n", after-before, float64(after-before)/o.duration.Seconds())
	return res, nil
}

// transactions is the bench database's committed and rolled back count.
func transactions(ctx context.Context, dsn string) (int64, error) {
	u, _ := url.Parse(dsn)
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", name).Scan(&n)
	return n, err
}
