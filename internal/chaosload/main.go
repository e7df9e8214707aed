// Package main is chaosload, the load program of scripts/chaos-db-outage: it
// sends GET requests through one or more proxies from a few keep-alive
// connections each, never retrying, for a fixed time, and prints how many
// were sent and how many failed, by kind. It is not shipped.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// report is where the figures go: the benchmark's output, not its log.
var report io.Writer = os.Stdout

func main() {
	targets := flag.String("targets", "", "proxy addresses host:port, comma-separated")
	path := flag.String("path", "/", "request path")
	duration := flag.Duration("duration", 10*time.Second, "how long to send at most; SIGTERM or SIGINT ends it sooner")
	conns := flag.Int("conns", 2, "keep-alive connections per target")
	pause := flag.Duration("pause", 2*time.Millisecond, "pause between two requests of one connection (bounds the load)")
	label := flag.String("label", "load", "name printed before the figures")
	flag.Parse()
	if *targets == "" {
		fmt.Fprintln(os.Stderr, "chaosload: -targets is required")
		os.Exit(2)
	}
	var c counts
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	var wg sync.WaitGroup
	for _, target := range strings.Split(*targets, ",") {
		for range *conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run(ctx, &c, "http://"+strings.TrimSpace(target)+*path, *pause)
			}()
		}
	}
	wg.Wait()
	fmt.Fprintln(report, c.report(*label))
	if c.failedTotal() > 0 {
		os.Exit(1)
	}
}

// counts are the requests sent and the failures by kind.
type counts struct {
	mu     sync.Mutex
	sent   int
	failed map[string]int
}

func (c *counts) add(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent++
	if kind == "" {
		return
	}
	if c.failed == nil {
		c.failed = map[string]int{}
	}
	c.failed[kind]++
}

func (c *counts) failedTotal() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for _, n := range c.failed {
		total += n
	}
	return total
}

func (c *counts) report(label string) string {
	total := c.failedTotal()
	c.mu.Lock()
	defer c.mu.Unlock()
	kinds := make([]string, 0, len(c.failed))
	for k, n := range c.failed {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	line := fmt.Sprintf("%s: %d requests sent, %d failed", label, c.sent, total)
	if len(kinds) > 0 {
		line += " (" + strings.Join(kinds, ", ") + ")"
	}
	return line
}

// run sends requests to url on one keep-alive client until ctx ends; a
// request in flight then is finished, not counted as failed.
func run(ctx context.Context, c *counts, url string, pause time.Duration) {
	transport := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	defer transport.CloseIdleConnections()
	for ctx.Err() == nil {
		c.add(request(client, url))
		time.Sleep(pause)
	}
}

// request sends one request and names its failure ("" for a 200).
func request(client *http.Client, url string) string {
	resp, err := client.Get(url)
	if err != nil {
		return kindOf(err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return kindOf(err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	return ""
}

func kindOf(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed before the response"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}
