package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/admin"
	"github.com/grapevine-gw/grapevine/internal/pgtest"
	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// nodeProcess is a grapevine node running as a real process on its own
// loopback host.
type nodeProcess struct {
	host   string
	conf   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited and been waited for
	log    *os.File
}

func (p *nodeProcess) adminURL() string { return "http://" + p.host + ":8001" }
func (p *nodeProcess) proxyURL() string { return "http://" + p.host + ":8000" }

// writeNodeConf writes a kong.conf for a node on host against the database.
func writeNodeConf(t *testing.T, dsn, host string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`pg_host = %s
pg_port = %s
pg_user = %s
pg_database = %s
proxy_listen = %s:8000
admin_listen = %s:8001
cluster_listen = %s:7946
db_update_frequency = 1
log_level = info
prefix = %s
`, u.Hostname(), u.Port(), u.User.Username(), strings.TrimPrefix(u.Path, "/"), host, host, host, t.TempDir())
	path := filepath.Join(t.TempDir(), host+".conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startProcess runs "grapevine start" (this test binary acting as the
// command) and waits until its Admin API answers.
func startProcess(t *testing.T, p *nodeProcess) {
	t.Helper()
	logFile, err := os.Create(filepath.Join(t.TempDir(), p.host+".log"))
	if err != nil {
		t.Fatal(err)
	}
	p.log = logFile
	p.cmd = exec.Command(os.Args[0], "start", "-c", p.conf)
	p.cmd.Env = append(os.Environ(), runMainEnv+"=1")
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting node process: %v", err)
	}
	cmd, exited := p.cmd, make(chan struct{})
	p.exited = exited
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { stopProcess(cmd, exited) })
	waitFor(t, 20*time.Second, func() error {
		select {
		case <-exited:
			return fmt.Errorf("node process exited: %v", cmd.ProcessState)
		default:
		}
		resp, err := http.Get(p.adminURL() + "/status")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}, p)
}

// stopProcess sends SIGTERM and waits; SIGKILL if it does not stop.
func stopProcess(cmd *exec.Cmd, exited chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// waitFor is testutil.Eventually that prints the given nodes' logs on failure.
func waitFor(t *testing.T, timeout time.Duration, check func() error, logs ...*nodeProcess) {
	t.Helper()
	testutil.Eventually(t, timeout, check, func() {
		for _, p := range logs {
			raw, _ := os.ReadFile(p.log.Name())
			t.Logf("log of %s:\n%s", p.host, raw)
		}
	})
}

func httpStatus(t *testing.T, method, target, body string) int {
	req, _ := http.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func members(t *testing.T, adminURL string) map[string]admin.ClusterMember {
	t.Helper()
	code, out, errOut := runCLI(t, "cluster", "members", "--json", "--admin", adminURL)
	if code != 0 {
		t.Fatalf("cluster members: exit %d: %s", code, errOut)
	}
	var status admin.ClusterStatus
	if err := json.Unmarshal([]byte(out), &status); err != nil {
		t.Fatalf("decoding members JSON: %v\n%s", err, out)
	}
	byHost := map[string]admin.ClusterMember{}
	for _, m := range status.Members {
		host, _, _ := strings.Cut(m.ClusterAddr, ":")
		byHost[host] = m
	}
	return byHost
}

func TestClusterOfProcessesSurvivesSIGKILL(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	nodes := []*nodeProcess{{host: "127.0.4.1"}, {host: "127.0.4.2"}, {host: "127.0.4.3"}}
	for _, p := range nodes {
		p.conf = writeNodeConf(t, dsn, p.host)
	}
	if code, _, errOut := runCLI(t, "migrations", "bootstrap", "-c", nodes[0].conf); code != 0 {
		t.Fatalf("bootstrap: %s", errOut)
	}
	for _, p := range nodes {
		startProcess(t, p)
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	waitFor(t, 20*time.Second, func() error {
		if got := members(t, a.adminURL()); len(got) != 3 {
			return fmt.Errorf("node A lists %d members, want 3", len(got))
		}
		return nil
	}, nodes...)

	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	if s := httpStatus(t, "POST", a.adminURL()+"/services", `{"name":"s","url":"`+up.URL+`"}`); s != 201 {
		t.Fatalf("create service: %d", s)
	}
	if s := httpStatus(t, "POST", a.adminURL()+"/services/s/routes", `{"paths":["/before"]}`); s != 201 {
		t.Fatalf("create route: %d", s)
	}
	for _, p := range nodes {
		waitFor(t, 5*time.Second, func() error { return proxyServes(p, "/before") }, p)
	}

	t.Run("table output", func(t *testing.T) {
		// A node may still be applying the change when asked: retry.
		waitFor(t, 5*time.Second, func() error {
			code, out, _ := runCLI(t, "cluster", "members", "--admin", b.adminURL())
			if code != 0 || !strings.Contains(out, "127.0.4.3:7946") || !strings.Contains(out, "alive") || !strings.Contains(out, "every alive node serves") {
				return fmt.Errorf("got exit %d:\n%s", code, out)
			}
			return nil
		})
	})
	t.Run("reachability", func(t *testing.T) {
		code, out, errOut := runCLI(t, "cluster", "reachability", "--admin", c.adminURL())
		if code != 0 || !strings.Contains(out, "every alive node answered") {
			t.Fatalf("got exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		for _, p := range nodes {
			if !strings.Contains(out, p.host+":7946") {
				t.Errorf("reachability does not list %s: %q", p.host, out)
			}
		}
	})
	t.Run("force-leave refuses an alive node", func(t *testing.T) {
		name := members(t, a.adminURL())[c.host].Name
		if code, _, errOut := runCLI(t, "cluster", "force-leave", name, "--admin", a.adminURL()); code != 1 || !strings.Contains(errOut, "only failed nodes") {
			t.Fatalf("got exit %d, stderr %q", code, errOut)
		}
	})

	if err := c.cmd.Process.Kill(); err != nil { // SIGKILL: no goodbye
		t.Fatal(err)
	}
	<-c.exited
	waitFor(t, 30*time.Second, func() error {
		if s := members(t, a.adminURL())[c.host].Status; s != "failed" {
			return fmt.Errorf("node C is %q on node A, want failed", s)
		}
		return nil
	}, a)
	if s := httpStatus(t, "POST", b.adminURL()+"/services/s/routes", `{"paths":["/while-c-was-dead"]}`); s != 201 {
		t.Fatalf("create route while C is dead: %d", s)
	}
	for _, p := range []*nodeProcess{a, b} {
		waitFor(t, 5*time.Second, func() error { return proxyServes(p, "/while-c-was-dead") }, p)
		if err := proxyServes(p, "/before"); err != nil {
			t.Fatal(err)
		}
	}

	startProcess(t, c) // same host and port: same name, current config from the first request
	if err := proxyServes(c, "/while-c-was-dead"); err != nil {
		t.Fatalf("restarted node C: %v", err)
	}
	waitFor(t, 20*time.Second, func() error {
		if s := members(t, a.adminURL())[c.host].Status; s != "alive" {
			return fmt.Errorf("node C is %q on node A after restart, want alive", s)
		}
		return nil
	}, a, c)

	stopProcess(b.cmd, b.exited) // SIGTERM: drains, leaves, exits 0
	if !b.cmd.ProcessState.Success() {
		t.Fatalf("SIGTERM: node B exited with %v, want 0", b.cmd.ProcessState)
	}
	waitFor(t, 10*time.Second, func() error {
		if s := members(t, a.adminURL())[b.host].Status; s != "left" && s != "" {
			return fmt.Errorf("node B is %q on node A after SIGTERM, want left", s)
		}
		return nil
	}, a)
}

func proxyServes(p *nodeProcess, path string) error {
	resp, err := http.Get(p.proxyURL() + path)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s%s answered %d", p.proxyURL(), path, resp.StatusCode)
	}
	return nil
}
