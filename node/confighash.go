package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// The config hash is kept up to date one entity at a time, so a change
// costs one entity's hashing, not the whole configuration's: each entity
// has a digest (SHA-256 of its table and its document as the database
// returns it, so every node reading the same rows agrees, and no entity
// is encoded again to be hashed; its created_at and updated_at values are
// left out, as a DB-less node stamps them when it loads its file, as
// Kong's process_auto_fields does, and two nodes serving the same file
// must agree) and the configuration's is
// the lane-wise sum of them, which does not depend on the order entities
// arrived in. Removing or replacing an entity subtracts its old digest.
// Summing is a multiset hash: fine for telling nodes apart that serve
// different configurations, not a defence against forged ones (gossip
// carries hints, never configuration).

// entityDigest is one entity's contribution to the config hash.
type entityDigest [4]uint64

func digestEntity(table string, doc []byte) entityDigest {
	h := sha256.New()
	_, _ = h.Write([]byte(table))
	kept := 0
	forTimestamps(doc, func(start, end int) {
		_, _ = h.Write(doc[kept:start])
		kept = end
	})
	_, _ = h.Write(doc[kept:])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var d entityDigest
	for i := range d {
		d[i] = binary.BigEndian.Uint64(sum[8*i:])
	}
	return d
}

// configDigest is the running sum of every entity's digest.
type configDigest struct {
	sum   entityDigest
	count int
}

func (c *configDigest) add(d entityDigest) {
	for i := range d {
		c.sum[i] += d[i]
	}
	c.count++
}

func (c *configDigest) sub(d entityDigest) {
	for i := range d {
		c.sum[i] -= d[i]
	}
	c.count--
}

// String is the hash nodes publish: 16 hex digits.
func (c *configDigest) String() string {
	var buf [40]byte
	for i, v := range c.sum {
		binary.BigEndian.PutUint64(buf[8*i:], v)
	}
	binary.BigEndian.PutUint64(buf[32:], uint64(c.count))
	sum := sha256.Sum256(buf[:])
	return hex.EncodeToString(sum[:8])
}

// forTimestamps calls skip with the place doc[start:end] of each value of
// a top-level "created_at" or "updated_at" member of a JSON object, in
// order. It scans the bytes once, minding strings, and never fails: in
// bytes that are not an object it finds nothing.
func forTimestamps(doc []byte, skip func(start, end int)) {
	depth := 0
	for i := 0; i < len(doc); i++ {
		switch doc[i] {
		case '"':
			end := stringEnd(doc, i+1)
			if depth == 1 && isTimestampKey(doc[i+1:end]) && keyPosition(doc, i) {
				if s, e, ok := valueAfter(doc, end+1); ok {
					skip(s, e)
					end = e - 1
				}
			}
			i = end
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
	}
}

// stringEnd is the index of the quote closing the string whose text
// starts at from (len(doc) if none).
func stringEnd(doc []byte, from int) int {
	// Jump from quote to quote (bytes.IndexByte is vectorised: strings
	// are most of a document's bytes); a quote is escaped when an odd run
	// of backslashes precedes it within the string.
	for i := from; i < len(doc); i++ {
		q := bytes.IndexByte(doc[i:], '"')
		if q < 0 {
			break
		}
		i += q
		slashes := 0
		for j := i - 1; j >= from && doc[j] == '\\'; j-- {
			slashes++
		}
		if slashes%2 == 0 {
			return i
		}
	}
	return len(doc)
}

func isTimestampKey(key []byte) bool {
	return string(key) == "created_at" || string(key) == "updated_at"
}

// keyPosition says whether the string opening at i is a member's name:
// the last byte before it, blanks aside, is '{' or ','.
func keyPosition(doc []byte, i int) bool {
	for j := i - 1; j >= 0; j-- {
		switch doc[j] {
		case ' ', '\t', '\n', '\r':
			continue
		case '{', ',':
			return true
		}
		return false
	}
	return false
}

// valueAfter is the scalar value after the ':' following a member's name
// at i: timestamps are numbers (or null), never records or strings.
func valueAfter(doc []byte, i int) (start, end int, ok bool) {
	for i < len(doc) && (doc[i] == ' ' || doc[i] == ':' || doc[i] == '\t' || doc[i] == '\n' || doc[i] == '\r') {
		i++
	}
	start = i
	for i < len(doc) && doc[i] != ',' && doc[i] != '}' && doc[i] != ' ' && doc[i] != '"' && doc[i] != '{' && doc[i] != '[' {
		i++
	}
	if i == start || (i < len(doc) && (doc[i] == '"' || doc[i] == '{' || doc[i] == '[')) {
		return 0, 0, false
	}
	return start, i, true
}
