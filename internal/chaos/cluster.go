package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// cluster is the node processes the benchmark runs.
type cluster struct {
	binary, dir string
	log         zerolog.Logger
	nodes       []*node
}

// node is one node: its current process, and every process it ran (a
// restart in place leaves a successor this program did not start).
type node struct {
	host, conf, logPath string
	cmd                 *exec.Cmd
	exited              chan struct{}
	pid                 int // the process serving now
}

func (c *cluster) start(dsn string, hosts []string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("dsn: %w", err)
	}
	for _, h := range hosts {
		n := &node{host: h, conf: filepath.Join(c.dir, h+".conf"), logPath: filepath.Join(c.dir, h+".log")}
		conf := fmt.Sprintf("pg_host = %s\npg_port = %s\npg_user = %s\npg_database = %s\n"+
			"proxy_listen = %s:8000\nadmin_listen = %s:8001\ncluster_listen = %s:7946\ncluster_join = %s:7946\n"+
			"db_update_frequency = 1\nlog_level = info\n",
			u.Hostname(), u.Port(), u.User.Username(), strings.TrimPrefix(u.Path, "/"), h, h, h, hosts[0])
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			return err
		}
		c.nodes = append(c.nodes, n)
		if err := c.launch(n); err != nil {
			return err
		}
	}
	return nil
}

// launch starts n's process and waits until its proxy answers.
func (c *cluster) launch(n *node) error {
	logFile, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	n.cmd = exec.Command(c.binary, "start", "-c", n.conf)
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", n.host, err)
	}
	n.pid = n.cmd.Process.Pid
	exited, cmd := make(chan struct{}), n.cmd
	n.exited = exited
	go func() { _ = cmd.Wait(); close(exited) }()
	return waitUntil(30*time.Second, func() error {
		resp, err := http.Get("http://" + n.host + ":8001/status")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// configure makes one service and a route "/" to the upstream, and waits
// until every proxy serves it.
func (c *cluster) configure(upstream string) error {
	admin := "http://" + c.nodes[0].host + ":8001"
	for _, form := range []struct{ path, body string }{
		{"/services", "name=up&url=" + url.QueryEscape(upstream)},
		{"/services/up/routes", "paths[]=/"},
	} {
		resp, err := http.Post(admin+form.path, "application/x-www-form-urlencoded", strings.NewReader(form.body))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			return fmt.Errorf("POST %s: %s", form.path, resp.Status)
		}
	}
	for _, n := range c.nodes {
		err := waitUntil(20*time.Second, func() error {
			resp, err := http.Get("http://" + n.host + ":8000/")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return errors.New(resp.Status)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s never served the route: %w", n.host, err)
		}
	}
	return nil
}

func (c *cluster) proxyAddrs() []string {
	var addrs []string
	for _, n := range c.nodes {
		addrs = append(addrs, n.host+":8000")
	}
	return addrs
}

// restart restarts node i and waits until it serves again.
func (c *cluster) restart(i int, mode string) error {
	n := c.nodes[i]
	if mode == "sigterm" {
		if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			return err
		}
		if err := waitExit(n.exited, 30*time.Second); err != nil {
			return fmt.Errorf("%s: %w", n.host, err)
		}
		return c.launch(n)
	}
	if err := syscall.Kill(n.pid, syscall.SIGUSR2); err != nil {
		return err
	}
	old := n.pid
	return waitUntil(60*time.Second, func() error {
		pid, err := successorOf(n.logPath, old)
		if err != nil {
			return err
		}
		if syscall.Kill(old, 0) == nil {
			return fmt.Errorf("pid %d still draining", old)
		}
		n.pid = pid
		return nil
	})
}

// successorOf finds in a node's log the successor process old handed over to.
func successorOf(logPath string, old int) (int, error) {
	raw, err := os.ReadFile(logPath)
	if err != nil {
		return 0, err
	}
	for _, m := range regexp.MustCompile(`"pid":(\d+),[^\n]*"successor_pid":(\d+)`).FindAllSubmatch(raw, -1) {
		if string(m[1]) == strconv.Itoa(old) {
			return strconv.Atoi(string(m[2]))
		}
	}
	return 0, fmt.Errorf("no successor of pid %d logged yet", old)
}

// stopAll stops every node process, successors included.
func (c *cluster) stopAll() {
	for _, n := range c.nodes {
		_ = syscall.Kill(n.pid, syscall.SIGTERM)
	}
	for _, n := range c.nodes {
		for i := 0; i < 200 && syscall.Kill(n.pid, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(n.pid, syscall.SIGKILL)
	}
}

func waitExit(exited <-chan struct{}, d time.Duration) error {
	select {
	case <-exited:
		return nil
	case <-time.After(d):
		return fmt.Errorf("did not exit within %v", d)
	}
}

func waitUntil(d time.Duration, check func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
