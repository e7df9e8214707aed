package testutil

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// StartRedis runs a throwaway redis-server on host (a loopback address)
// with nothing saved to disk and returns its address and a stop function
// (also run when the test ends). The test is skipped, saying why, when
// redis-server is not installed (scripts/test installs it).
func StartRedis(t testing.TB, host string) (addr string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server); skipping the redis policy test")
	}
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatalf("finding a free port for redis: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	addr = net.JoinHostPort(host, strconv.Itoa(port))
	cmd := exec.Command(bin, "--bind", host, "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--protected-mode", "no")
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Kill()
		<-done
	}
	t.Cleanup(stop)
	Eventually(t, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return fmt.Errorf("redis-server on %s not answering yet: %w", addr, err)
		}
		return c.Close()
	})
	return addr, stop
}
