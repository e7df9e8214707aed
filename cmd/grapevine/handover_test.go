package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/internal/keepload"
	"github.com/grapevine-gw/grapevine/internal/pgtest"
)

// An in-place restart (SIGUSR2) under steady keep-alive load refuses and
// breaks nothing: the successor takes over the listening sockets and
// serves before the old process drains (each client's next answer says
// Connection: close, and the client reconnects, to the successor), and the
// old process exits 0. The clients never retry. Before, the only way was
// SIGTERM and a new start: requests were refused while the port was closed
// and some met a connection closed under them.
func TestInPlaceRestartRefusesNothing(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	old := &nodeProcess{host: "127.0.4.40"}
	old.conf = writeNodeConf(t, dsn, old.host)
	if code, _, errOut := runCLI(t, "migrations", "bootstrap", "-c", old.conf); code != 0 {
		t.Fatalf("bootstrap: %s", errOut)
	}
	startProcess(t, old)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	if s := httpStatus(t, "POST", old.adminURL()+"/services", `{"name":"s","url":"`+up.URL+`"}`); s != 201 {
		t.Fatalf("create service: %d", s)
	}
	if s := httpStatus(t, "POST", old.adminURL()+"/services/s/routes", `{"paths":["/"]}`); s != 201 {
		t.Fatalf("create route: %d", s)
	}
	waitFor(t, 10*time.Second, func() error {
		if s := httpStatus(t, "GET", old.proxyURL()+"/", ""); s != 200 {
			return fmt.Errorf("proxy answers %d", s)
		}
		return nil
	}, old)

	load := keepload.Start([]string{old.host + ":8000"}, 8)
	time.Sleep(300 * time.Millisecond)
	if err := old.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.exited:
	case <-time.After(40 * time.Second):
		raw, _ := os.ReadFile(old.log.Name())
		t.Fatalf("the old process did not exit after handing over; its log:\n%s", raw)
	}
	successor := successorPID(t, old)
	t.Cleanup(func() { stopPID(successor) })
	if code := old.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the old process exited with %d, want 0", code)
	}
	time.Sleep(300 * time.Millisecond) // load on the successor alone
	r := load.Stop()
	sent, failed := r.Sent, r.Failed()
	t.Logf("sent %d requests over the restart, %d failed %v", sent, failed, r.Failures)
	if failed != 0 || sent < 100 {
		t.Errorf("sent %d requests, %d failed %v; want none failed", sent, failed, r.Failures)
	}
	if s := httpStatus(t, "GET", old.adminURL()+"/status", ""); s != 200 {
		t.Errorf("the successor's Admin API answers %d, want 200", s)
	}
}

// successorPID reads the successor's process id from the old process's log.
func successorPID(t *testing.T, p *nodeProcess) int {
	t.Helper()
	raw, _ := os.ReadFile(p.log.Name())
	m := regexp.MustCompile(`"successor_pid":(\d+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatalf("no successor in the old process's log:\n%s", raw)
	}
	pid, _ := strconv.Atoi(string(m[1]))
	return pid
}

// stopPID stops a process this test did not start itself (a successor).
func stopPID(pid int) {
	proc, err := os.FindProcess(pid)
	if err != nil {
		return
	}
	_ = proc.Signal(syscall.SIGTERM)
	for i := 0; i < 150; i++ {
		if proc.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = proc.Kill()
}
