// Package keepload is steady HTTP load the way DNS round-robin clients
// make it: client connections sending GET / one after another, each to
// the next address in turn when it connects, reconnecting only when an
// answer says Connection: close, and never retrying a request. It counts
// what was sent, what failed by kind, and the latencies. Used by the
// rolling-restart benchmark (internal/chaos) and the in-place restart
// test; not shipped.
package keepload

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Load is a running load; Stop ends it.
type Load struct {
	addrs    []string
	next     atomic.Uint64
	stopping atomic.Bool
	wg       sync.WaitGroup

	mu        sync.Mutex // guards the fields below
	sent      int
	failures  map[string]int
	latencies []time.Duration
}

// Start starts clients connections sending to addrs.
func Start(addrs []string, clients int) *Load {
	l := &Load{addrs: addrs, failures: map[string]int{}}
	for range clients {
		l.wg.Add(1)
		go l.client()
	}
	return l
}

func (l *Load) client() {
	defer l.wg.Done()
	var conn net.Conn
	var br *bufio.Reader
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	lat := make([]time.Duration, 0, 1<<14)
	sent, failures := 0, map[string]int{}
	for !l.stopping.Load() {
		began := time.Now()
		if conn == nil {
			addr := l.addrs[l.next.Add(1)%uint64(len(l.addrs))]
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				sent++
				failures[kindOf(err, "connect")]++
				time.Sleep(5 * time.Millisecond)
				continue
			}
			conn, br = c, bufio.NewReader(c)
		}
		sent++
		closing, kind := request(conn, br)
		if kind != "" {
			failures[kind]++
		} else {
			lat = append(lat, time.Since(began))
		}
		if kind != "" || closing {
			conn.Close()
			conn = nil
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent += sent
	for k, v := range failures {
		l.failures[k] += v
	}
	l.latencies = append(l.latencies, lat...)
}

// request sends one GET and reads its answer; kind names the failure, ""
// for a 200.
func request(conn net.Conn, br *bufio.Reader) (closing bool, kind string) {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: chaos\r\n\r\n"); err != nil {
		return false, kindOf(err, "send")
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return false, kindOf(err, "answer")
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return false, kindOf(err, "body")
	case resp.StatusCode != 200:
		return resp.Close, fmt.Sprintf("status %d", resp.StatusCode)
	}
	return resp.Close, ""
}

// kindOf names a failure by the step and what happened.
func kindOf(err error, step string) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return step + ": refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return step + ": reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return step + ": closed before the answer"
	case errors.As(err, &ne) && ne.Timeout():
		return step + ": timeout"
	}
	return step + ": " + err.Error()
}

// Result is what a load saw.
type Result struct {
	Sent      int
	Failures  map[string]int  // by kind, e.g. "connect: refused"
	Latencies []time.Duration // of the requests answered 200, sorted
}

// Stop ends the load and returns what it saw.
func (l *Load) Stop() Result {
	l.stopping.Store(true)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.latencies)
	return Result{Sent: l.sent, Failures: l.failures, Latencies: l.latencies}
}

// Failed is how many requests failed.
func (r Result) Failed() int {
	failed := 0
	for _, n := range r.Failures {
		failed += n
	}
	return failed
}

// Print writes the figures under a title line.
func (r Result) Print(w io.Writer, title string) {
	fmt.Fprintln(w, title)
	fmt.Fprintf(w, "requests sent %d, failed %d\n", r.Sent, r.Failed())
	kinds := make([]string, 0, len(r.Failures))
	for k := range r.Failures {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %-40s %d\n", k, r.Failures[k])
	}
	if len(r.Latencies) > 0 {
		fmt.Fprintf(w, "latency p50 %v  p99 %v  p99.9 %v  max %v\n", r.Percentile(0.50),
			r.Percentile(0.99), r.Percentile(0.999), r.Latencies[len(r.Latencies)-1])
	}
}

// Percentile is the latency below which the fraction p of the answered
// requests fall (0 when none was answered), to 10 µs.
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[min(len(r.Latencies)-1, int(float64(len(r.Latencies))*p))].Round(10 * time.Microsecond)
}
