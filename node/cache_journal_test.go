package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/node/config"
)

const journalTestDB = "127.0.0.1:5432/kong"

func line(table, id, doc string) cacheLine {
	return cacheLine{Table: table, cachedRow: cachedRow{ID: id, Doc: json.RawMessage(doc)}}
}

func routeLine(id, path string) cacheLine {
	return line("routes", id, fmt.Sprintf(`{"id": %q, "paths": [%q], "service": {"id": "s1"}}`, id, path))
}

// newJournaledCache is a writer that wrote a base of one service and one
// route (r1 at /v1) from journalTestDB.
func newJournaledCache(t *testing.T) *cacheFiles {
	t.Helper()
	w := &cacheFiles{path: filepath.Join(t.TempDir(), cacheFileName)}
	t.Cleanup(w.closeJournal)
	base := []cacheLine{line("services", "s1", `{"id": "s1", "host": "example.com"}`), routeLine("r1", "/v1")}
	if _, err := w.write(journalMeta("whole"), cacheContent{whole: true, put: base}); err != nil {
		t.Fatal(err)
	}
	return w
}

func journalMeta(hash string) cacheMeta {
	return cacheMeta{WrittenAt: time.Now().UTC(), Node: "n1", Database: journalTestDB, ConfigHash: hash}
}

// record appends one journal record through the writer.
func record(t *testing.T, w *cacheFiles, hash string, put []cacheLine, deleted ...cacheKey) {
	t.Helper()
	if _, err := w.write(journalMeta(hash), cacheContent{put: put, deleted: deleted}); err != nil {
		t.Fatal(err)
	}
}

// appendRaw appends bytes to the journal as a crash or a disk would.
func appendRaw(t *testing.T, w *cacheFiles, data []byte) {
	t.Helper()
	f, err := os.OpenFile(w.path+cacheJournalSuffix, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

func mustFrame(t *testing.T, put ...cacheLine) []byte {
	t.Helper()
	frame, err := journalFrame(journalRecord{WrittenAt: time.Now(), ConfigHash: "torn", Put: put})
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// editFile applies edit to a file's bytes.
func editFile(t *testing.T, path string, edit func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, edit(bytes.Clone(data)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// served renders what a cache body serves: "table/id doc" per entity,
// sorted, and the hash recorded.
func served(body cacheBody) string {
	var out []string
	for table, rows := range body.Tables {
		for _, r := range rows {
			out = append(out, table+"/"+r.ID+" "+string(r.Doc))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n") + "\nhash " + body.ConfigHash
}

// TestCacheJournalIsReplayedOrRefused writes a base and journal records
// through the writer, damages them as a crash, a disk or a person would,
// and reads the cache back as a node starting without its database does.
func TestCacheJournalIsReplayedOrRefused(t *testing.T) {
	service := `services/s1 {"id": "s1", "host": "example.com"}`
	r1 := func(path string) string {
		return fmt.Sprintf(`routes/r1 {"id": "r1", "paths": [%q], "service": {"id": "s1"}}`, path)
	}
	r2 := `routes/r2 {"id": "r2", "paths": ["/two"], "service": {"id": "s1"}}`
	cases := []struct {
		name    string
		build   func(t *testing.T, w *cacheFiles)
		want    []string // entities served, sorted; nil when refused
		hash    string   // the hash recorded last
		note    string   // a note the loader must log, "" for none
		refusal string   // the refusal, "" when served
	}{
		{
			name:  "the base alone",
			build: func(t *testing.T, w *cacheFiles) {},
			want:  []string{r1("/v1"), service}, hash: "whole",
		},
		{
			name:  "no journal file: the base alone",
			build: func(t *testing.T, w *cacheFiles) { os.Remove(w.path + cacheJournalSuffix) },
			want:  []string{r1("/v1"), service}, hash: "whole",
		},
		{
			name: "records are replayed in order",
			build: func(t *testing.T, w *cacheFiles) {
				record(t, w, "h1", []cacheLine{routeLine("r1", "/v2")})
				record(t, w, "h2", []cacheLine{routeLine("r1", "/v3"), routeLine("r2", "/two")})
			},
			want: []string{r1("/v3"), r2, service}, hash: "h2",
		},
		{
			name: "a deletion",
			build: func(t *testing.T, w *cacheFiles) {
				record(t, w, "h1", nil, cacheKey{Table: "routes", ID: "r1"})
			},
			want: []string{service}, hash: "h1",
		},
		{
			name: "deleted then created again",
			build: func(t *testing.T, w *cacheFiles) {
				record(t, w, "h1", nil, cacheKey{Table: "routes", ID: "r1"})
				record(t, w, "h2", []cacheLine{routeLine("r1", "/again")})
			},
			want: []string{r1("/again"), service}, hash: "h2",
		},
		{
			name: "created then deleted",
			build: func(t *testing.T, w *cacheFiles) {
				record(t, w, "h1", []cacheLine{routeLine("r2", "/two")})
				record(t, w, "h2", nil, cacheKey{Table: "routes", ID: "r2"})
			},
			want: []string{r1("/v1"), service}, hash: "h2",
		},
		{
			name: "a torn tail: the record's header cut short",
			build: func(t *testing.T, w *cacheFiles) {
				record(t, w, "h1", []cacheLine{routeLine("r1", "/v2")})
				appendRaw(t, w, mustFrame(t, routeLine("r1", "/torn"))[:10])
			},
			want: []string{r1("/v2"), service}, hash: "h1", note: "dropped a torn configuration cache journal tail",
		},
		{
			name: "a torn tail: the payload cut short",
			build: func(t *testing.T, w *cacheFiles) {
				record(t, w, "h1", []cacheLine{routeLine("r1", "/v2")})
				frame := mustFrame(t, routeLine("r1", "/torn"))
				appendRaw(t, w, frame[:len(frame)-5])
			},
			want: []string{r1("/v2"), service}, hash: "h1", note: "dropped a torn configuration cache journal tail",
		},
		{
			name: "a torn tail: zeros where the record was to be",
			build: func(t *testing.T, w *cacheFiles) {
				record(t, w, "h1", []cacheLine{routeLine("r1", "/v2")})
				appendRaw(t, w, make([]byte, 300))
			},
			want: []string{r1("/v2"), service}, hash: "h1", note: "dropped a torn configuration cache journal tail",
		},
		{
			name: "a torn tail: the last record's bytes half written",
			build: func(t *testing.T, w *cacheFiles) {
				record(t, w, "h1", []cacheLine{routeLine("r1", "/v2")})
				frame := mustFrame(t, routeLine("r1", "/torn"))
				copy(frame[len(frame)-20:], make([]byte, 20))
				appendRaw(t, w, frame)
			},
			want: []string{r1("/v2"), service}, hash: "h1", note: "dropped a torn configuration cache journal tail",
		},
		{
			name: "a record changed with another after it",
			build: func(t *testing.T, w *cacheFiles) {
				record(t, w, "h1", []cacheLine{routeLine("r1", "/v2")})
				record(t, w, "h2", []cacheLine{routeLine("r1", "/v3")})
				editFile(t, w.path+cacheJournalSuffix, func(b []byte) []byte {
					return bytes.Replace(b, []byte("/v2"), []byte("/v9"), 1)
				})
			},
			refusal: "corrupt journal record 1",
		},
		{
			name: "a record that is not a record, with more after it",
			build: func(t *testing.T, w *cacheFiles) {
				appendRaw(t, w, []byte("garbage\n"))
				record(t, w, "h2", []cacheLine{routeLine("r1", "/v3")})
			},
			refusal: "corrupt journal record 1",
		},
		{
			name: "a journal continuing another base is ignored",
			build: func(t *testing.T, w *cacheFiles) {
				record(t, w, "h1", []cacheLine{routeLine("r1", "/v2")})
				other := sha256.Sum256([]byte("another base"))
				editFile(t, w.path+cacheJournalSuffix, func(b []byte) []byte {
					return bytes.Replace(b, []byte(w.base.sum), fmt.Appendf(nil, "%x", other), 1)
				})
			},
			want: []string{r1("/v1"), service}, hash: "whole", note: "continues another base",
		},
		{
			name: "a foreign journal",
			build: func(t *testing.T, w *cacheFiles) {
				os.WriteFile(w.path+cacheJournalSuffix, []byte("pg_host = 127.0.0.1\n"), 0o644)
			},
			refusal: "not a Grapevine configuration cache journal",
		},
		{
			name: "an empty journal",
			build: func(t *testing.T, w *cacheFiles) {
				os.WriteFile(w.path+cacheJournalSuffix, nil, 0o644)
			},
			refusal: "the journal has no header line",
		},
		{
			name: "a journal of another format version",
			build: func(t *testing.T, w *cacheFiles) {
				editFile(t, w.path+cacheJournalSuffix, func(b []byte) []byte {
					return bytes.Replace(b, []byte(journalMagic+" 3 "), []byte(journalMagic+" 99 "), 1)
				})
			},
			refusal: "journal format version 99",
		},
		{
			name: "a corrupt base under a good journal",
			build: func(t *testing.T, w *cacheFiles) {
				record(t, w, "h1", []cacheLine{routeLine("r1", "/v2")})
				editFile(t, w.path, func(b []byte) []byte { return bytes.Replace(b, []byte("example.com"), []byte("example.org"), 1) })
			},
			refusal: "sha256 does not match",
		},
		{
			name: "a cache of format 1 (one JSON document) is read, the journal beside it not",
			build: func(t *testing.T, w *cacheFiles) {
				record(t, w, "h1", []cacheLine{routeLine("r1", "/v2")})
				body := []byte(`{"written_at":"2026-11-01T00:00:00Z","database":"127.0.0.1:5432/kong","config_hash":"v1",` +
					`"tables":{"services":[{"id":"s1","doc":{"id":"s1","host":"old.example.com"}}]}}`)
				sum := sha256.Sum256(body)
				os.WriteFile(w.path, append(fmt.Appendf(nil, "%s 1 %x %d\n", cacheMagic, sum, len(body)), body...), 0o644)
			},
			want: []string{`services/s1 {"id":"s1","host":"old.example.com"}`}, hash: "v1",
		},
		{
			name: "a cache of format 1 with a byte changed",
			build: func(t *testing.T, w *cacheFiles) {
				body := []byte(`{"database":"127.0.0.1:5432/kong","tables":{}}`)
				sum := sha256.Sum256(append(body, ' '))
				os.WriteFile(w.path, append(fmt.Appendf(nil, "%s 1 %x %d\n", cacheMagic, sum, len(body)), body...), 0o644)
			},
			refusal: "sha256 does not match",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newJournaledCache(t)
			tc.build(t, w)
			w.closeJournal()
			body, err := readCache(w.path, journalTestDB)
			if tc.refusal != "" {
				if !errors.Is(err, errCacheRefused) || !strings.Contains(err.Error(), tc.refusal) {
					t.Fatalf("got error %v, want a refusal containing %q", err, tc.refusal)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want the cache served", err)
			}
			if got, want := served(body), strings.Join(tc.want, "\n")+"\nhash "+tc.hash; got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
			notes := strings.Join(body.notes, "\n")
			if (tc.note == "") != (notes == "") || !strings.Contains(notes, tc.note) {
				t.Errorf("got notes %q, want one containing %q", notes, tc.note)
			}
		})
	}
}

// TestCacheJournalIsCompactedIntoANewBase drives the writer past its
// compaction threshold: the base written then must hold what the base and
// the journal held, with an empty journal after it, and a journal left
// over from before the compaction (a crash before the new journal) must
// not be replayed onto the new base.
func TestCacheJournalIsCompactedIntoANewBase(t *testing.T) {
	w := newJournaledCache(t)
	oldBase := w.base.sum
	record(t, w, "h1", []cacheLine{routeLine("r2", "/two"), routeLine("r3", "/three")})
	record(t, w, "h2", nil, cacheKey{Table: "routes", ID: "r3"})
	staleJournal, err := os.ReadFile(w.path + cacheJournalSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if w.base.sum != oldBase {
		t.Fatalf("compacted too early, after %d bytes of journal", len(staleJournal))
	}
	w.minCompact = 1 // the next record makes the journal outgrow a quarter of the base
	done, err := w.write(journalMeta("h3"), cacheContent{put: []cacheLine{routeLine("r1", "/v2")}})
	if err != nil || !done.compacted {
		t.Fatalf("got %+v, %v; want the third record to compact the journal", done, err)
	}
	w.minCompact = 1 << 20
	want := strings.Join([]string{
		`routes/r1 {"id": "r1", "paths": ["/v2"], "service": {"id": "s1"}}`,
		`routes/r2 {"id": "r2", "paths": ["/two"], "service": {"id": "s1"}}`,
		`services/s1 {"id": "s1", "host": "example.com"}`,
	}, "\n") + "\nhash h3"
	t.Run("the new base holds everything", func(t *testing.T) {
		journal, err := os.ReadFile(w.path + cacheJournalSuffix)
		if err != nil || !bytes.Equal(journal, journalHeader(w.base.sum)) {
			t.Fatalf("got journal %q (%v), want only the header naming the new base", journal, err)
		}
		body, err := readCache(w.path, journalTestDB)
		if err != nil || served(body) != want {
			t.Fatalf("got %v\n%s\nwant\n%s", err, served(body), want)
		}
	})
	t.Run("it is appended to as before", func(t *testing.T) {
		record(t, w, "h4", nil, cacheKey{Table: "routes", ID: "r2"})
		body, err := readCache(w.path, journalTestDB)
		if err != nil || strings.Contains(served(body), "routes/r2") || body.ConfigHash != "h4" {
			t.Fatalf("got %v\n%s\nwant r2 deleted, hash h4", err, served(body))
		}
	})
	t.Run("the journal of the old base is not replayed onto the new", func(t *testing.T) {
		w.closeJournal()
		if err := os.WriteFile(w.path+cacheJournalSuffix, staleJournal, 0o644); err != nil {
			t.Fatal(err)
		}
		body, err := readCache(w.path, journalTestDB)
		if err != nil || served(body) != want || len(body.notes) != 1 {
			t.Fatalf("got %v, notes %q\n%s\nwant the new base alone, and a note\n%s", err, body.notes, served(body), want)
		}
	})
}

// TestCacheWriteFailureAsksForTheWholeConfiguration: once an append
// failed, the journal may end in a torn record, so the writer appends no
// more and the applier's next hand-off is the whole configuration.
func TestCacheWriteFailureAsksForTheWholeConfiguration(t *testing.T) {
	a := &applier{cacheCh: make(chan cacheContent, 1)}
	if err := a.replaceRows(consumerRows(3)); err != nil {
		t.Fatal(err)
	}
	n := &Node{cfg: config.Config{Prefix: t.TempDir()}, name: "n1", applier: a, log: zerolog.Nop()}
	handOff := func() cacheContent {
		a.handOffCache()
		c := <-a.cacheCh
		n.writeCache(c)
		return c
	}
	route := entityKey{Table: "routes", ID: benchRouteID}
	if c := handOff(); !c.whole {
		t.Fatalf("got a first hand-off of %d changes, want the whole configuration", len(c.put))
	}
	t.Cleanup(n.cacheFiles.closeJournal)
	n.cacheFiles.journal.Close() // the next append fails
	a.setDoc(route, benchRouteDoc(1))
	if c := handOff(); c.whole || len(c.put) != 1 {
		t.Fatalf("got whole %v with %d entities, want the one route changed", c.whole, len(c.put))
	}
	a.setDoc(route, benchRouteDoc(2))
	c := handOff()
	if !c.whole || len(c.put) != len(a.docs) {
		t.Fatalf("after a failed append got whole %v with %d entities, want all %d", c.whole, len(c.put), len(a.docs))
	}
	body, err := readCache(n.cachePath(), n.databaseID())
	if err != nil || !strings.Contains(served(body), `"/r2"`) {
		t.Fatalf("got %v\n%s\nwant the route at /r2", err, served(body))
	}
}

// TestCacheWithAnotherHashIsRefused: the base and journal replayed must
// give the configuration whose hash the writer recorded with the newest
// change; anything else (a replay that went wrong, documents changed
// under a checksum made again) is never served.
func TestCacheWithAnotherHashIsRefused(t *testing.T) {
	body, err := decodeCache(validCache(t, journalTestDB), journalTestDB)
	if err != nil {
		t.Fatal(err)
	}
	a := &applier{}
	err = a.loadCache(body)
	if !errors.Is(err, errCacheRefused) || !strings.Contains(err.Error(), "the cache recorded abc") {
		t.Fatalf("got %v, want a refusal naming the recorded hash abc", err)
	}
	if a.fromCache {
		t.Fatalf("the applier serves the refused cache")
	}
}
