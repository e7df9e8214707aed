// Package main is tracestat, the trace reader of scripts/bench-proxy: it
// reads a Go execution trace (a node's /debug/pprof/trace, see debug_listen)
// and prints what the tail-latency analysis in the README reasons from: how
// long goroutines waited runnable for a P (scheduler latency), how often the
// garbage collector ran and how long it stopped the world or made request
// goroutines assist it, and how busy the Ps were. It is not shipped.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// report is where the figures go: the benchmark's output, not its log.
var report io.Writer = os.Stdout

func main() {
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: tracestat TRACE_FILE")
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	stats, err := readTrace(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracestat:", err)
		os.Exit(1)
	}
	stats.print(report)
}

// stats is what one trace adds up to.
type stats struct {
	first, last  trace.Time
	schedWaits   []time.Duration // runnable until running, per wake-up
	stopTheWorld []time.Duration // each stop-the-world pause
	gcCycles     int             // concurrent mark phases begun
	assist       time.Duration   // time goroutines spent in GC mark assist
	running      time.Duration   // time some goroutine ran, summed over Ps
	procs        int             // highest P id seen + 1
}

// tracker follows state across events: when each goroutine became
// runnable, and when open ranges and runs began.
type tracker struct {
	stats
	runnableSince map[trace.GoID]trace.Time
	runningSince  map[trace.GoID]trace.Time
	rangeBegan    map[string]trace.Time // global ranges (stop-the-world) by name
	assistBegan   map[trace.GoID]trace.Time
}

func readTrace(path string) (stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return stats{}, err
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		return stats{}, fmt.Errorf("reading %s: %w", path, err)
	}
	t := &tracker{
		runnableSince: map[trace.GoID]trace.Time{},
		runningSince:  map[trace.GoID]trace.Time{},
		rangeBegan:    map[string]trace.Time{},
		assistBegan:   map[trace.GoID]trace.Time{},
	}
	for {
		ev, err := r.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return stats{}, fmt.Errorf("reading %s: %w", path, err)
		}
		t.add(ev)
	}
	return t.stats, nil
}

func (t *tracker) add(ev trace.Event) {
	now := ev.Time()
	if t.first == 0 {
		t.first = now
	}
	t.last = now
	if p := ev.Proc(); p != trace.NoProc && int(p)+1 > t.procs {
		t.procs = int(p) + 1
	}
	switch ev.Kind() {
	case trace.EventStateTransition:
		t.transition(ev, now)
	case trace.EventRangeBegin, trace.EventRangeEnd:
		t.rangeEdge(ev, now)
	}
}

func (t *tracker) transition(ev trace.Event, now trace.Time) {
	st := ev.StateTransition()
	if st.Resource.Kind != trace.ResourceGoroutine {
		return
	}
	id := st.Resource.Goroutine()
	from, to := st.Goroutine()
	if from == trace.GoRunning {
		if began, ok := t.runningSince[id]; ok {
			t.running += time.Duration(now - began)
			delete(t.runningSince, id)
		}
	}
	switch to {
	case trace.GoRunnable:
		t.runnableSince[id] = now
	case trace.GoRunning:
		t.runningSince[id] = now
		if since, ok := t.runnableSince[id]; ok && from == trace.GoRunnable {
			t.schedWaits = append(t.schedWaits, time.Duration(now-since))
		}
		delete(t.runnableSince, id)
	default:
		delete(t.runnableSince, id)
	}
}

func (t *tracker) rangeEdge(ev trace.Event, now trace.Time) {
	name := ev.Range().Name
	switch {
	case strings.HasPrefix(name, "stop-the-world"):
		if ev.Kind() == trace.EventRangeBegin {
			t.rangeBegan[name] = now
		} else if began, ok := t.rangeBegan[name]; ok {
			t.stopTheWorld = append(t.stopTheWorld, time.Duration(now-began))
			delete(t.rangeBegan, name)
		}
	case name == "GC concurrent mark phase" && ev.Kind() == trace.EventRangeBegin:
		t.gcCycles++
	case name == "GC mark assist":
		id := ev.Goroutine()
		if ev.Kind() == trace.EventRangeBegin {
			t.assistBegan[id] = now
		} else if began, ok := t.assistBegan[id]; ok {
			t.assist += time.Duration(now - began)
			delete(t.assistBegan, id)
		}
	}
}

func (s stats) print(w io.Writer) {
	window := time.Duration(s.last - s.first)
	fmt.Fprintf(w, "trace window %.2f s, %d Ps; goroutines ran %.2f s in all (%.2f Ps busy on average)\n",
		window.Seconds(), s.procs, s.running.Seconds(), s.running.Seconds()/max(window.Seconds(), 1e-9))
	fmt.Fprintf(w, "scheduler latency (runnable until running) over %d wake-ups: %s\n",
		len(s.schedWaits), percentiles(s.schedWaits))
	fmt.Fprintf(w, "  waits over 1 ms: %d, over 5 ms: %d\n", countOver(s.schedWaits, time.Millisecond), countOver(s.schedWaits, 5*time.Millisecond))
	fmt.Fprintf(w, "GC: %d cycles (%.1f/s); %d stop-the-world pauses: %s; mark assist %.1f ms in all\n",
		s.gcCycles, float64(s.gcCycles)/max(window.Seconds(), 1e-9), len(s.stopTheWorld), percentiles(s.stopTheWorld),
		float64(s.assist)/float64(time.Millisecond))
}

// percentiles is "p50 … p99 … p99.9 … max …" of ds, in microseconds.
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	at := func(q float64) float64 {
		return float64(sorted[min(len(sorted)-1, int(q*float64(len(sorted))))].Microseconds())
	}
	return fmt.Sprintf("p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us", at(0.5), at(0.99), at(0.999), float64(sorted[len(sorted)-1].Microseconds()))
}

func countOver(ds []time.Duration, bound time.Duration) int {
	n := 0
	for _, d := range ds {
		if d > bound {
			n++
		}
	}
	return n
}
