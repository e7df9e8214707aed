package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDBLessProcessReloadsOnSIGHUP: `grapevine start` with database = off
// serves declarative_config with no PostgreSQL, `grapevine cluster
// members` lists it, and SIGHUP makes it serve the file as it is now, as
// Kong's reload re-reads declarative_config.
func TestDBLessProcessReloadsOnSIGHUP(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "kong.yml")
	doc := func(path string) string {
		return fmt.Sprintf("_format_version: \"3.0\"\nservices:\n- name: s\n  url: %s\n  routes:\n  - paths: [%s]\n", up.URL, path)
	}
	if err := os.WriteFile(file, []byte(doc("/a")), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &nodeProcess{host: "127.0.76.1"}
	p.conf = filepath.Join(dir, "kong.conf")
	conf := fmt.Sprintf("database = off\ndeclarative_config = %s\npg_host = 127.0.76.254\npg_port = 1\nproxy_listen = %s:8000\nadmin_listen = %s:8001\ncluster_listen = %s:7946\nprefix = %s\n",
		file, p.host, p.host, p.host, dir)
	if err := os.WriteFile(p.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, p)
	serving := func(path string, want int) func() error {
		return func() error {
			if s := httpStatus(t, "GET", p.proxyURL()+path, ""); s != want {
				return fmt.Errorf("GET %s answers %d, want %d", path, s, want)
			}
			return nil
		}
	}
	waitFor(t, 10*time.Second, serving("/a", 200), p)

	code, out, errOut := runCLI(t, "cluster", "members", "--admin", p.adminURL())
	if code != 0 || !strings.Contains(out, p.host+":7946") {
		t.Errorf("cluster members: exit %d, stdout %q, stderr %q; want this node listed", code, out, errOut)
	}

	if err := os.WriteFile(file, []byte(doc("/c")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, serving("/c", 200), p)
	waitFor(t, 10*time.Second, serving("/a", 404), p)
	select {
	case <-p.exited:
		t.Fatal("the node exited on SIGHUP")
	default:
	}
}
