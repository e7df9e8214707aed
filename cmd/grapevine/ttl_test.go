package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// keyExpiry is the key-auth credential key's expiry in Unix seconds, as the
// database holds it; -1 for none.
func keyExpiry(t *testing.T, dsn, key string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var at *int64
	err = conn.QueryRow(ctx, "SELECT EXTRACT(EPOCH FROM ttl)::bigint FROM keyauth_credentials WHERE key = $1", key).Scan(&at)
	if err != nil {
		t.Fatalf("reading %s's expiry: %v", key, err)
	}
	if at == nil {
		return -1
	}
	return *at
}

// TestExportKeepsExpiry: `config db_export` writes a key-auth credential's
// ttl as Kong 3.9's export does, the Unix time it expires
// (select_for_export_expressions in kong/db/strategies/postgres/init.lua,
// FLOOR(EXTRACT(EPOCH FROM ttl))), not the seconds left; and `db_import` of
// that file restores the same expiry, also when imported a while later
// (kong/db/strategies/off/init.lua reads it the same way: ttl - now).
func TestExportKeepsExpiry(t *testing.T) {
	conf, dsn := dbConf(t)
	file := filepath.Join(t.TempDir(), "keys.yml")
	doc := "_format_version: \"3.0\"\nconsumers:\n- username: alice\n  keyauth_credentials:\n  - key: expiring\n  - key: forever\n"
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "config", "db_import", file, "-c", conf)
	expires := time.Now().Add(time.Hour).Unix()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(context.Background(), "UPDATE keyauth_credentials SET ttl = to_timestamp($1) WHERE key = 'expiring'", expires)
	conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	exported := filepath.Join(t.TempDir(), "export.yml")
	mustCLI(t, "config", "db_export", "-c", conf, exported)
	text := string(readFile(t, exported))
	if want := fmt.Sprintf("ttl: %d", expires); !strings.Contains(text, want) {
		t.Fatalf("export: got\n%s\nwant it to hold %q", text, want)
	}
	if !strings.Contains(text, "ttl: null") {
		t.Errorf("export: got\n%s\nwant the key that never expires with ttl: null", text)
	}

	mustCLI(t, "migrations", "reset", "--yes", "-c", conf)
	mustCLI(t, "migrations", "bootstrap", "-c", conf)
	mustCLI(t, "config", "db_import", exported, "-c", conf)
	if got := keyExpiry(t, dsn, "expiring"); got != expires {
		t.Errorf("after import: got expiry %d, want %d", got, expires)
	}
	if got := keyExpiry(t, dsn, "forever"); got != -1 {
		t.Errorf("after import: got expiry %d for the key that never expires, want none", got)
	}
	again := filepath.Join(t.TempDir(), "again.yml")
	mustCLI(t, "config", "db_export", "-c", conf, again)
	if a, b := readFile(t, exported), readFile(t, again); string(a) != string(b) {
		t.Errorf("export → import → export differs:\n--- first\n%s\n--- second\n%s", a, b)
	}
	t.Run("a bad ttl is refused", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yml")
		body := strings.Replace(doc, "key: forever", "key: bad\n    ttl: soon", 1)
		if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runCLI(t, "config", "db_import", bad, "-c", conf)
		if code != 1 || !strings.Contains(errOut, "field ttl") {
			t.Errorf("got exit %d %q, want 1 naming field ttl", code, errOut)
		}
	})
}
