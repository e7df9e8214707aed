package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
)

// FuzzCacheLoad feeds arbitrary cache files to the loader: decodeCache,
// then the whole configuration into a fresh state and a snapshot, as a
// node starting without its database does. With wrap set, the input is a
// body given a correct header, so the fuzzer gets past the checksum and
// explores the JSON; without, the file is taken as it is. It must never
// panic; a file that is not accepted is refused with errCacheRefused.
func FuzzCacheLoad(f *testing.F) {
	const db = "127.0.0.1:5432/kong"
	valid := validCache(f, db)
	f.Add(valid, false)
	f.Add(valid[:len(valid)-1], false)
	f.Add([]byte("GRAPEVINE-CACHE 1 00 0\n"), false)
	_, body, _ := cutHeader(valid)
	f.Add(body, true)
	f.Add([]byte(`{"database":"127.0.0.1:5432/kong","tables":{"routes":[{"id":"r","doc":{"id":"r","paths":["~/("],"service":{"id":"x"}}}],"upstreams":[{"id":"u","doc":null}]}}`), true)
	f.Add([]byte(`{"database":"127.0.0.1:5432/kong","tables":{"plugins":[{"id":"p","doc":{"id":"p","name":"key-auth","config":7}}],"keyauth_credentials":[{"id":"k","doc":[]}]}}`), true)
	legacy := []byte(`{"database":"127.0.0.1:5432/kong","tables":{"services":[{"id":"s","doc":{"id":"s","host":"h"}}]}}`)
	legacySum := sha256.Sum256(legacy)
	f.Add(append([]byte(fmt.Sprintf("%s 1 %s %d\n", cacheMagic, hex.EncodeToString(legacySum[:]), len(legacy))), legacy...), false)
	f.Add([]byte(`{"database":"127.0.0.1:5432/kong"}
{"table":"routes","id":"r","doc":{"id":"r","paths":["/a"],"service":{"id":"x"}}}
{"table":"services","id":"x","doc":{"id":"x","host":"h"}}
{"table":"consumers","id":"c","doc":{"id":"c","username":"u"}}
`), true)
	f.Fuzz(func(t *testing.T, data []byte, wrap bool) {
		if wrap {
			sum := sha256.Sum256(data)
			data = append([]byte(fmt.Sprintf("%s %d %s %d\n", cacheMagic, cacheFormatVersion, hex.EncodeToString(sum[:]), len(data))), data...)
		}
		got, err := decodeCache(data, db)
		if err != nil {
			if !errors.Is(err, errCacheRefused) {
				t.Fatalf("got error %v, want errCacheRefused", err)
			}
			return
		}
		a := &applier{}
		if err := a.replaceRows(cacheRows(got)); err != nil {
			return // refused whole, as loadCache refuses it
		}
		a.state.snapshot()
	})
}

// cutHeader splits a cache file into its header line and body.
func cutHeader(data []byte) (header, body []byte, ok bool) {
	for i, c := range data {
		if c == '\n' {
			return data[:i], data[i+1:], true
		}
	}
	return nil, nil, false
}

// FuzzCacheJournal feeds arbitrary journals continuing a valid base to
// the loader, then the configuration replayed into a fresh state and a
// snapshot. With frame set, the input is one record's payload given a
// correct header and frame, so the fuzzer explores the records' JSON. It
// must never panic; a journal not accepted is refused with
// errCacheRefused, and a torn tail is dropped with a note.
func FuzzCacheJournal(f *testing.F) {
	const db = "127.0.0.1:5432/kong"
	base := validCache(f, db)
	_, info, err := scanCacheBase(bytes.NewReader(base), int64(len(base)), db, func(cacheLine) error { return nil })
	if err != nil {
		f.Fatal(err)
	}
	frame, _ := journalFrame(journalRecord{ConfigHash: "h", Put: []cacheLine{{Table: "routes", cachedRow: cachedRow{ID: "r",
		Doc: []byte(`{"id": "r", "paths": ["/a"], "service": {"id": "0b1d4c4e-5d0a-4a55-9f3f-0d7c4f1b2a11"}}`)}}}})
	journal := append(journalHeader(info.sum), frame...)
	f.Add(journal, false)
	f.Add(journal[:len(journal)-3], false)
	f.Add(append(bytes.Clone(journal), 0, 0, 0), false)
	f.Add([]byte(`{"put":[{"table":"services","id":"0b1d4c4e-5d0a-4a55-9f3f-0d7c4f1b2a11","doc":null}],"deleted":[{"table":"routes","id":"r"}]}`+"\n"), true)
	f.Add([]byte(`{"put":[{"table":"plugins","id":"p","doc":{"id":"p","name":"key-auth","config":{}}},{"table":"keyauth_credentials","id":"k","doc":{"id":"k"}}]}`+"\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, frame bool) {
		if frame {
			sum := sha256.Sum256(data)
			data = append(append(journalHeader(info.sum), fmt.Sprintf("%d %x\n", len(data), sum)...), data...)
		}
		s, info, err := readCacheBase(bytes.NewReader(base), int64(len(base)), db)
		if err != nil {
			t.Fatal(err)
		}
		records, _, err := decodeJournal(data, info.sum)
		if err != nil {
			if !errors.Is(err, errCacheRefused) {
				t.Fatalf("got error %v, want errCacheRefused", err)
			}
			return
		}
		for _, rec := range records {
			s.apply(rec)
		}
		a := &applier{}
		if err := a.replaceRows(cacheRows(s.body(nil, info))); err != nil {
			return // refused whole, as loadCache refuses it
		}
		a.state.snapshot()
	})
}
