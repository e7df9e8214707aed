package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// debug_listen serves Go's profiler beside a working node: a CPU profile and
// an execution trace of the running process can be taken, which is how the
// README's benchmark section gathered its evidence. Off by default.
func TestDebugListenServesTheProfiler(t *testing.T) {
	p := floodNode(t, "127.0.4.50", "debug_listen = 127.0.4.50:8005\n")
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/trace?seconds=1"} {
		resp, err := http.Get("http://127.0.4.50:8005" + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Fatalf("GET %s: status %d, %d bytes; want 200 with a body", path, resp.StatusCode, len(body))
		}
	}
	if err := proxyServes(p, "/flood"); err != nil {
		t.Fatalf("proxy while the profiler is served: %v", err)
	}
}

func TestDebugListenRefusesABadAddress(t *testing.T) {
	conf := writeFile(t, "debug_listen = nowhere\n")
	code, _, errOut := runCLI(t, "start", "-c", conf)
	if code == 0 || !strings.Contains(errOut, "debug_listen") {
		t.Fatalf("got exit %d and %q, want a non-zero exit naming debug_listen", code, errOut)
	}
}
