package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// validCache is a cache file holding one service, from database db.
func validCache(t testing.TB, db string) []byte {
	t.Helper()
	data, err := encodeCache(cacheBody{
		cacheMeta: cacheMeta{WrittenAt: time.Now().UTC(), Node: "n1", Database: db, ConfigHash: "abc"},
		Tables: map[string][]cachedRow{"services": {{ID: "0b1d4c4e-5d0a-4a55-9f3f-0d7c4f1b2a11",
			Doc: json.RawMessage(`{"id":"0b1d4c4e-5d0a-4a55-9f3f-0d7c4f1b2a11","name":"s","host":"example.com"}`)}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestCacheFileIsCheckedWholeBeforeUse(t *testing.T) {
	const db = "127.0.0.1:5432/kong"
	good := validCache(t, db)
	flipped := bytes.Clone(good)
	flipped[len(flipped)-10] ^= 0x20
	otherVersion := bytes.Replace(good, []byte(cacheMagic+" 3 "), []byte(cacheMagic+" 99 "), 1)
	cases := []struct {
		name    string
		data    []byte
		db      string
		wantErr string // "" for a cache that is served
	}{
		{"a whole file is read back", good, db, ""},
		{"truncated mid-body", good[:len(good)-7], db, "truncated or extended"},
		{"truncated in the header", good[:20], db, "no header line"},
		{"empty", nil, db, "no header line"},
		{"a byte changed", flipped, db, "sha256 does not match"},
		{"bytes appended", append(bytes.Clone(good), "{}"...), db, "truncated or extended"},
		{"another format version", otherVersion, db, "format version 99, this node reads versions 1 to 3"},
		{"a kong.conf", []byte("pg_host = 127.0.0.1\npg_port = 5432\n"), db, "not a Grapevine configuration cache"},
		{"another database's cache", good, "127.0.0.1:5432/other", `written from database "127.0.0.1:5432/kong"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), cacheFileName)
			if err := writeCacheFile(path, tc.data); err != nil {
				t.Fatal(err)
			}
			body, err := readCache(path, tc.db)
			if tc.wantErr == "" {
				if err != nil || len(body.Tables["services"]) != 1 {
					t.Fatalf("got %v with %d services, want the cache with 1", err, len(body.Tables["services"]))
				}
				return
			}
			if !errors.Is(err, errCacheRefused) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want a refusal containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestCacheFileIsReplacedAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nested", cacheFileName)
	for i := 0; i < 3; i++ {
		if err := writeCacheFile(path, validCache(t, "db")); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != cacheFileName {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("got files %v in the prefix, want only %s (no temporary files left)", names, cacheFileName)
	}
}

// BenchmarkCacheWrite10kRoutes is one whole cache write (a base) of
// 10 000 routes, what the writer spends after a full load.
func BenchmarkCacheWrite10kRoutes(b *testing.B) {
	var routes []cacheLine
	for i := range 10000 {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		routes = append(routes, cacheLine{Table: "routes", cachedRow: cachedRow{ID: id, Doc: json.RawMessage(fmt.Sprintf(
			`{"id":%q,"name":"r%d","paths":["/r%d"],"protocols":["http","https"],"strip_path":true,"service":{"id":"0b1d4c4e-5d0a-4a55-9f3f-0d7c4f1b2a11"}}`, id, i, i))}})
	}
	path := filepath.Join(b.TempDir(), cacheFileName)
	b.ResetTimer()
	for range b.N {
		base, err := writeCacheBase(path, cacheMeta{WrittenAt: time.Now(), Database: "db"}, lines(routes))
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(base.size)
	}
}
