package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procStats is one look at the node's process through /proc.
type procStats struct {
	up    bool  // the process exists and is not a zombie
	rssKB int64 // VmRSS
	fds   int   // entries of /proc/PID/fd
}

func readProc(pid int) procStats {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStats{}
	}
	defer f.Close()
	var s procStats
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(value)
		switch {
		case key == "State" && len(fields) > 0:
			s.up = fields[0] != "Z" && fields[0] != "X"
		case key == "VmRSS" && len(fields) > 0:
			s.rssKB, _ = strconv.ParseInt(fields[0], 10, 64)
		}
	}
	if !s.up {
		return procStats{}
	}
	if d, err := os.Open(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		names, _ := d.Readdirnames(-1)
		d.Close()
		s.fds = len(names)
	}
	return s
}

func (s procStats) rss() string {
	if !s.up {
		return "down"
	}
	return fmt.Sprintf("%.0f", float64(s.rssKB)/1024)
}

func (s procStats) fdCount() string {
	if !s.up {
		return "down"
	}
	return strconv.Itoa(s.fds)
}

// sampler watches the node while an attack runs and keeps the highest RSS
// and descriptor count it saw (each at its own moment).
type sampler struct {
	done chan struct{}
	wg   sync.WaitGroup

	mu   sync.Mutex // guards peak
	peak procStats
}

func startSampler(pid int, every time.Duration) *sampler {
	s := &sampler{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.add(readProc(pid))
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) add(p procStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !p.up {
		return
	}
	s.peak.up = true
	s.peak.rssKB = max(s.peak.rssKB, p.rssKB)
	s.peak.fds = max(s.peak.fds, p.fds)
}

// stop ends sampling and returns the peaks.
func (s *sampler) stop() procStats {
	close(s.done)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// probeStats are ordinary requests through the proxy: how many were
// answered 200 and how fast, and why the others were not.
type probeStats struct {
	ok, total int
	latencies []time.Duration // of the 200s
	failures  map[string]int
}

func (p *probeStats) add(status int, took time.Duration, err error) {
	p.total++
	switch {
	case err != nil:
		p.fail(shortError(err))
	case status != http.StatusOK:
		p.fail(fmt.Sprintf("status %d", status))
	default:
		p.ok++
		p.latencies = append(p.latencies, took)
	}
}

func (p *probeStats) fail(why string) {
	if p.failures == nil {
		p.failures = make(map[string]int)
	}
	p.failures[why]++
}

// String is "ok/total 200 (p50 X ms, max Y ms)" and the failures.
func (p probeStats) String() string {
	if p.total == 0 {
		return "none sent"
	}
	out := fmt.Sprintf("%d/%d 200", p.ok, p.total)
	if len(p.latencies) > 0 {
		l := slices.Clone(p.latencies)
		slices.Sort(l)
		out += fmt.Sprintf(" (p50 %s, max %s)", ms(l[len(l)/2]), ms(l[len(l)-1]))
	}
	for why, n := range p.failures {
		out += fmt.Sprintf("; %d× %s", n, why)
	}
	return out
}

// short is "ok/total p50/max ms" for the table.
func (p probeStats) short() string {
	if p.total == 0 {
		return "-"
	}
	if len(p.latencies) == 0 {
		return fmt.Sprintf("%d/%d", p.ok, p.total)
	}
	l := slices.Clone(p.latencies)
	slices.Sort(l)
	return fmt.Sprintf("%d/%d %s/%s", p.ok, p.total, msNum(l[len(l)/2]), msNum(l[len(l)-1]))
}

func ms(d time.Duration) string { return msNum(d) + " ms" }
func msNum(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64)
}

// shortError keeps the informative tail of a net/http error.
func shortError(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i < 60 {
		s = s[i+2:]
	}
	return s
}

// prober sends an ordinary GET through the proxy every so often, each on a
// new connection, as a client arriving during a flood would.
type prober struct {
	client *http.Client
	url    string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex // guards stats
	stats probeStats
}

func newProbeClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// probe sends one GET and returns its status and latency.
func probe(client *http.Client, url string) (int, time.Duration, error) {
	start := time.Now()
	resp, err := client.Get(url)
	if err != nil {
		return 0, time.Since(start), err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, time.Since(start), err
}

func startProber(url string, every time.Duration) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{client: newProbeClient(), url: url, cancel: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			status, took, err := probe(p.client, p.url)
			p.mu.Lock()
			p.stats.add(status, took, err)
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *prober) stop() probeStats {
	p.cancel()
	p.wg.Wait()
	return p.stats
}

// probeAfter sends n probes one after another.
func probeAfter(url string, n int) probeStats {
	client := newProbeClient()
	var s probeStats
	for range n {
		status, took, err := probe(client, url)
		s.add(status, took, err)
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// nodeStatus is GET /status of the Admin API, the counters that matter here.
type nodeStatus struct {
	Server map[string]int64 `json:"server"`
	Proxy  struct {
		Accepting   bool   `json:"accepting"`
		AcceptError string `json:"accept_error"`
	} `json:"proxy"`
	Database struct {
		Reachable bool `json:"reachable"`
	} `json:"database"`
}

func fetchStatus(adminURL string) string {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(adminURL + "/status")
	if err != nil {
		return "unavailable: " + shortError(err)
	}
	defer resp.Body.Close()
	var st nodeStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return fmt.Sprintf("status %d, unreadable: %v", resp.StatusCode, err)
	}
	out := fmt.Sprintf("accepted=%d active=%d handled=%d reading=%d writing=%d waiting=%d requests=%d accepting=%t db=%t",
		st.Server["connections_accepted"], st.Server["connections_active"], st.Server["connections_handled"],
		st.Server["connections_reading"], st.Server["connections_writing"], st.Server["connections_waiting"],
		st.Server["total_requests"], st.Proxy.Accepting, st.Database.Reachable)
	if st.Proxy.AcceptError != "" {
		out += " accept_error=" + st.Proxy.AcceptError
	}
	return out
}

// activeConns is the node's connections_active from /status.
func activeConns(adminURL string) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(adminURL + "/status")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var st nodeStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return "", fmt.Errorf("reading /status: %w", err)
	}
	return strconv.FormatInt(st.Server["connections_active"], 10), nil
}
