package node

import (
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
