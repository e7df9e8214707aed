package main

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/trace"
	"strings"
	"sync"
	"testing"
	"time"
)

// A trace of this very process, with goroutines woken and a forced GC,
// adds up to wake-ups, a GC cycle with its stop-the-world pauses, and time
// goroutines ran.
func TestReadTraceCountsWakeupsAndGC(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.Start(f); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); time.Sleep(time.Millisecond) }()
	}
	wg.Wait()
	runtime.GC()
	trace.Stop()
	f.Close()

	s, err := readTrace(path)
	if err != nil {
		t.Fatalf("readTrace: %v", err)
	}
	if len(s.schedWaits) < 100 {
		t.Errorf("got %d wake-ups, want at least the 100 sleepers'", len(s.schedWaits))
	}
	if s.gcCycles < 1 || len(s.stopTheWorld) < 2 {
		t.Errorf("got %d GC cycles and %d stop-the-world pauses, want a cycle and its two pauses", s.gcCycles, len(s.stopTheWorld))
	}
	if s.running <= 0 || s.procs < 1 {
		t.Errorf("got running %v over %d Ps, want some", s.running, s.procs)
	}
	var out strings.Builder
	s.print(&out)
	if !strings.Contains(out.String(), "scheduler latency") {
		t.Errorf("report lacks the scheduler latency line:\n%s", out.String())
	}
}

func TestReadTraceRefusesWhatIsNotATrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not-a-trace")
	if err := os.WriteFile(path, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readTrace(path); err == nil {
		t.Fatal("readTrace accepted a file that is not a trace")
	}
}

func TestPercentiles(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tests := []struct {
		name string
		in   []time.Duration
		want string
	}{
		{"none", nil, "none"},
		{"one", []time.Duration{ms(2)}, "p50 2000 us, p99 2000 us, p99.9 2000 us, max 2000 us"},
		{"unsorted", []time.Duration{ms(3), ms(1), ms(2)}, "p50 2000 us, p99 3000 us, p99.9 3000 us, max 3000 us"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentiles(tt.in); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
