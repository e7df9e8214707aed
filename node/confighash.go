package node

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// The config hash is kept up to date one entity at a time, so a change
// costs one entity's hashing, not the whole configuration's: each entity
// has a digest (SHA-256 of its table and its document as the database
// returns it, so every node reading the same rows agrees, and no entity
// is encoded again to be hashed) and the configuration's is
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
	_, _ = h.Write(doc)
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
