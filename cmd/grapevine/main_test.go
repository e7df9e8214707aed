package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grapevine-gw/grapevine/internal/pgtest"
)

// runMainEnv makes the test binary act as the grapevine command, so tests
// can start real node processes (and SIGKILL them) without a separate build.
const runMainEnv = "GV_TEST_RUN_MAIN" // not GRAPEVINE_*: that prefix is for config keys

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	pgtest.Main(m)
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "grapevine.conf")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCLIUsageAndErrors(t *testing.T) {
	good := writeFile(t, "pg_port = 5433\nproxy_listen = 127.0.0.1:8000\n")
	bad := writeFile(t, "pg_port = 5433\npg_prot = 1\n")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"no command", nil, 2, "Usage: grapevine COMMAND", ""},
		{"help", []string{"--help"}, 0, "Commands:", ""},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"version", []string{"version"}, 0, "grapevine 0.1.0", ""},
		{"start help", []string{"start", "--help"}, 0, "Usage: grapevine start", ""},
		{"migrations help", []string{"migrations", "--help"}, 0, "bootstrap|up|status|reset", ""},
		{"config parse good", []string{"config", "parse", "-c", good}, 0, "is valid", ""},
		{"config parse bad key", []string{"config", "parse", "-c", bad}, 1, "", "pg_prot: unknown config key"},
		{"config parse missing file", []string{"config", "parse", "-c", "/nonexistent/x.conf"}, 1, "", "reading config file"},
		{"config parse without file", []string{"config", "parse"}, 1, "", "needs a file"},
		{"config unknown action", []string{"config", "frob"}, 2, "unknown or missing action", ""},
		{"stray argument", []string{"version", "extra"}, 2, "unexpected arguments: extra", ""},
		{"unknown flag", []string{"start", "--nope"}, 2, "flag provided but not defined", ""},
		{"start with bad config", []string{"start", "-c", bad}, 1, "", "pg_prot"},
		{"reset needs --yes", []string{"migrations", "reset", "-c", good}, 1, "", "--yes"},
		{"health with nothing running", []string{"health", "-c", writeFile(t, "admin_listen = 127.0.0.1:1\n")}, 1, "", "not running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("got exit %d, want %d (stdout %q, stderr %q)", code, tt.wantCode, out, errOut)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("got stdout %q, want it to contain %q", out, tt.wantOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("got stderr %q, want it to contain %q", errOut, tt.wantErr)
			}
		})
	}
}

func TestCLIMigrations(t *testing.T) {
	u, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GRAPEVINE_PG_HOST", u.Hostname())
	t.Setenv("GRAPEVINE_PG_PORT", u.Port())
	t.Setenv("GRAPEVINE_PG_USER", u.User.Username())
	t.Setenv("GRAPEVINE_PG_DATABASE", strings.TrimPrefix(u.Path, "/"))
	steps := []struct {
		args    []string
		wantOut string
	}{
		{[]string{"migrations", "status"}, "needs bootstrapping"},
		{[]string{"migrations", "bootstrap"}, "Database is up-to-date"},
		{[]string{"migrations", "bootstrap"}, "already bootstrapped"},
		{[]string{"migrations", "status"}, "Executed migrations"},
		{[]string{"migrations", "up"}, "0 migrations processed"},
		{[]string{"migrations", "reset", "--yes"}, "Database cleared"},
		{[]string{"migrations", "status"}, "needs bootstrapping"},
	}
	for _, step := range steps {
		code, out, errOut := runCLI(t, step.args...)
		if code != 0 || !strings.Contains(out, step.wantOut) {
			t.Fatalf("%v: got exit %d, stdout %q, stderr %q; want 0 and %q", step.args, code, out, errOut, step.wantOut)
		}
	}
}

func TestCLIMigrationsWithoutDatabase(t *testing.T) {
	t.Setenv("GRAPEVINE_PG_PORT", "1")
	code, _, errOut := runCLI(t, "migrations", "status")
	if code != 1 || !strings.Contains(errOut, "opening database") {
		t.Fatalf("got exit %d, stderr %q; want 1 and an 'opening database' error", code, errOut)
	}
}
