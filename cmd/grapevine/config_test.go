package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grapevine-gw/grapevine/internal/pgtest"
	"github.com/grapevine-gw/grapevine/internal/testutil"
	"github.com/grapevine-gw/grapevine/store"
)

// dbConf writes a kong.conf for a fresh database and bootstraps it.
func dbConf(t *testing.T) (conf, dsn string) {
	t.Helper()
	dsn = pgtest.NewDatabase(t)
	u, _ := url.Parse(dsn)
	conf = writeFile(t, fmt.Sprintf("pg_host = %s\npg_port = %s\npg_user = %s\npg_database = %s\n",
		u.Hostname(), u.Port(), u.User.Username(), strings.TrimPrefix(u.Path, "/")))
	mustCLI(t, "migrations", "bootstrap", "-c", conf)
	return conf, dsn
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("grapevine %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func eventCount(t *testing.T, dsn string) int {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	events, err := st.EventsSince(context.Background(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return len(events)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConfigExportResetImportExport: Kong's `kong config db_import` and
// `db_export` (kong/cmd/config.lua): a file covering every kind imports
// with one cluster event, and export → reset → import → export gives the
// same bytes; a bad file is refused naming the entity and field, and
// changes nothing.
func TestConfigExportResetImportExport(t *testing.T) {
	conf, dsn := dbConf(t)
	dir := t.TempDir()
	fixture := filepath.Join(dir, "fixture.yml")
	if err := os.WriteFile(fixture, []byte(testutil.DeclarativeFixture(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustCLI(t, "config", "parse", fixture); !strings.Contains(out, "parse successful") {
		t.Errorf("config parse: got %q, want parse successful", out)
	}
	before := eventCount(t, dsn)
	if out := mustCLI(t, "config", "db_import", fixture, "-c", conf); !strings.Contains(out, "(100%)") {
		t.Errorf("config db_import: got %q, want its progress ending at 100%%", out)
	}
	if got := eventCount(t, dsn) - before; got != 1 {
		t.Errorf("import of the fixture: got %d cluster events, want 1", got)
	}
	first := filepath.Join(dir, "first.yml")
	mustCLI(t, "config", "db_export", "-c", conf, first)

	mustCLI(t, "migrations", "reset", "--yes", "-c", conf)
	mustCLI(t, "migrations", "bootstrap", "-c", conf)
	mustCLI(t, "config", "db_import", "-c", conf, first)
	second := filepath.Join(dir, "second.yml")
	mustCLI(t, "config", "db_export", "-c", conf, second)
	if a, b := readFile(t, first), readFile(t, second); !bytes.Equal(a, b) {
		t.Fatalf("export → reset → import → export differs:\n--- first\n%s\n--- second\n%s", a, b)
	}

	t.Run("export will not overwrite", func(t *testing.T) {
		code, _, errOut := runCLI(t, "config", "db_export", "-c", conf, first)
		if code != 1 || !strings.Contains(errOut, "already exists") {
			t.Errorf("got exit %d %q, want 1 and 'already exists'", code, errOut)
		}
	})
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"dangling reference", "\n- name: lost\n  paths: [/lost]\n  service: nope\n",
			[]string{`routes[2] ("lost")`, "field service: invalid reference"}},
		// Without an id alice would get the one Kong derives from her
		// username, the one she holds already: an update, not a conflict.
		{"name taken by another id in the database", "\nconsumers:\n- id: 6ba7b810-9dad-41d1-80b4-00c04fd43002\n  username: alice\n",
			[]string{"failed importing (nothing was changed)", "username"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.yml")
			doc := "_format_version: \"3.0\"\nservices:\n- name: added\n  host: added.test\nroutes:\n- name: fine\n  paths: [/fine]\n  service: added"
			if err := os.WriteFile(bad, []byte(doc+tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := runCLI(t, "config", "db_import", bad, "-c", conf)
			if code != 1 {
				t.Fatalf("got exit %d, want 1 (%s)", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("got %q, want it to contain %q", errOut, w)
				}
			}
			after := filepath.Join(t.TempDir(), "after.yml")
			mustCLI(t, "config", "db_export", "-c", conf, after)
			if !bytes.Equal(readFile(t, after), readFile(t, first)) {
				t.Errorf("a refused import changed the configuration")
			}
		})
	}
}
