package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/internal/pgtest"
)

// floodNode starts a real node process on host with extra kong.conf lines
// and one route, /flood, to an upstream answering "ok".
func floodNode(t *testing.T, host, extraConf string) *nodeProcess {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	p := &nodeProcess{host: host, conf: writeNodeConf(t, dsn, host)}
	f, err := os.OpenFile(p.conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "cluster_listen = off\n"+extraConf)
	f.Close()
	if code, _, errOut := runCLI(t, "migrations", "bootstrap", "-c", p.conf); code != 0 {
		t.Fatalf("bootstrap: %s", errOut)
	}
	startProcess(t, p)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(up.Close)
	if s := httpStatus(t, "POST", p.adminURL()+"/services", `{"name":"s","url":"`+up.URL+`"}`); s != 201 {
		t.Fatalf("create service: %d", s)
	}
	if s := httpStatus(t, "POST", p.adminURL()+"/services/s/routes", `{"paths":["/flood"]}`); s != 201 {
		t.Fatalf("create route: %d", s)
	}
	waitFor(t, 5*time.Second, func() error { return proxyServes(p, "/flood") }, p)
	return p
}

// flood opens n connections to addr, writing first on each when set; they
// are closed at cleanup or by the returned function.
func flood(t *testing.T, addr string, n int, first string) (closeAll func()) {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	closeAll = func() {
		for _, c := range conns {
			c.Close()
		}
		conns = conns[:0]
	}
	t.Cleanup(closeAll)
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("flood dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
		if first != "" {
			io.WriteString(c, first)
		}
	}
	return closeAll
}

// processFigures reads a process's open descriptors and resident memory.
func processFigures(pid int) string {
	fds, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	rss := ""
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			rss = strings.Join(strings.Fields(line)[1:], " ")
		}
	}
	return fmt.Sprintf("%d descriptors, RSS %s", len(fds), rss)
}

// A flood of idle connections, more than the node has descriptors, once
// stopped the proxy for good. Now the cap closes the idle ones longest
// waiting and ordinary requests are served during and after the flood.
func TestIdleFloodLeavesTheProxyServing(t *testing.T) {
	p := floodNode(t, "127.0.5.1", "nginx_main_worker_rlimit_nofile = 400\n")
	pid := p.cmd.Process.Pid
	proxyAddr := p.host + ":8000"
	t.Logf("before: %s", processFigures(pid))

	stop := flood(t, proxyAddr, 1000, "")
	waitFor(t, 20*time.Second, func() error { return proxyServes(p, "/flood") }, p)
	status := nodeStatus(t, p)
	t.Logf("during: %s; /status: %s", processFigures(pid), status)
	if !strings.Contains(status, `"accepting":true`) {
		t.Errorf("got /status %s, want the proxy accepting", status)
	}

	stop()
	waitFor(t, 20*time.Second, func() error {
		if err := proxyServes(p, "/flood"); err != nil {
			return err
		}
		if s := nodeStatus(t, p); !strings.Contains(s, `"connections_active":0`) && !strings.Contains(s, `"connections_active":1,`) {
			return fmt.Errorf("got /status %s, want the flood's connections gone", s)
		}
		return nil
	}, p)
	t.Logf("after: %s", processFigures(pid))
}

// When accepting fails (out of descriptors, every connection busy), the
// health check says so, and the proxy recovers by itself once the flood
// ends.
func TestHealthFailsWhileTheProxyCannotAccept(t *testing.T) {
	// A cap above the descriptor limit lets the flood reach it.
	p := floodNode(t, "127.0.5.2", "nginx_main_worker_rlimit_nofile = 300\nnginx_events_worker_connections = 5000\n")
	pid := p.cmd.Process.Pid
	ctx := context.Background()
	// The health check's keep-alive connection to the Admin API stays
	// open through the flood; a new one could not be accepted.
	if err := checkHealth(ctx, http.DefaultClient, p.adminURL(), io.Discard); err != nil {
		t.Fatalf("health before the flood: %v", err)
	}

	const busy = "GET /flood HTTP/1.1\r\nHost: x\r\n" // headers never finished
	stop := flood(t, p.host+":8000", 400, busy)
	waitFor(t, 20*time.Second, func() error {
		// Accepting fails only while a connection waits to be accepted:
		// keep one waiting, as clients arriving all the time would. The
		// proxy frees descriptors by closing idle connections, so without
		// newcomers it would accept again once the flood is all in.
		more := flood(t, p.host+":8000", 1, busy)
		defer more()
		err := checkHealth(ctx, http.DefaultClient, p.adminURL(), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "cannot accept") {
			return fmt.Errorf("got health %v, want unhealthy: the proxy cannot accept", err)
		}
		return nil
	}, p)
	t.Logf("during: %s", processFigures(pid))

	stop()
	waitFor(t, 20*time.Second, func() error {
		if err := proxyServes(p, "/flood"); err != nil {
			return err
		}
		return checkHealth(ctx, http.DefaultClient, p.adminURL(), io.Discard)
	}, p)
	t.Logf("after: %s", processFigures(pid))
}

func nodeStatus(t *testing.T, p *nodeProcess) string {
	t.Helper()
	resp, err := http.Get(p.adminURL() + "/status")
	if err != nil {
		t.Fatalf("GET /status: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}
