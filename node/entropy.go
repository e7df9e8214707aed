package node

import (
	"context"
	"time"
)

// driftCheckEvery is how often a node compares its hash with the cluster's.
const driftCheckEvery = time.Second

// driftWatch tracks how long this node's config hash has differed from the
// majority's. Owned by the anti-entropy goroutine.
type driftWatch struct {
	bound time.Duration
	since time.Time // zero while in agreement
}

func newDriftWatch(bound time.Duration) *driftWatch { return &driftWatch{bound: bound} }

// observe records one comparison and reports whether the node has been
// out of step for longer than the bound.
func (d *driftWatch) observe(mine string, hashes []string, now time.Time) bool {
	majority, ok := majorityHash(hashes)
	if !ok || majority == mine {
		d.since = time.Time{}
		return false
	}
	if d.since.IsZero() {
		d.since = now
		return false
	}
	if now.Sub(d.since) < d.bound {
		return false
	}
	d.since = time.Time{}
	return true
}

// majorityHash is the hash more than half of the given hashes share.
func majorityHash(hashes []string) (string, bool) {
	counts := map[string]int{}
	for _, h := range hashes {
		if h != "" {
			counts[h]++
		}
	}
	for h, c := range counts {
		if c*2 > len(hashes) {
			return h, true
		}
	}
	return "", false
}

// driftBound is how long a differing hash is tolerated: longer than a
// change normally takes to reach every node by polling.
func (n *Node) driftBound() time.Duration {
	if n.hooks.DriftBound > 0 {
		return n.hooks.DriftBound
	}
	return 2*n.cfg.DBUpdateFrequency + 2*time.Second
}

// antiEntropyLoop reloads the whole configuration when this node's hash
// has differed from the majority of alive members for longer than the
// bound: a safety net beyond Kong's, for a node that missed an event.
func (n *Node) antiEntropyLoop(ctx context.Context) {
	every(ctx, driftCheckEvery, n.checkDrift)
}

func (n *Node) checkDrift(now time.Time) {
	var hashes []string
	for _, m := range n.gossip.Members() {
		if m.Status == "alive" {
			hashes = append(hashes, m.Tags[tagConfigHash])
		}
	}
	mine := n.ConfigHash()
	if !n.drift.observe(mine, hashes, now) {
		return
	}
	// Tags can lag by many seconds on a busy cluster: before reloading
	// everything, ask the members what they serve now.
	if majority, ok := majorityHash(n.liveHashes()); !ok || majority == mine {
		return
	}
	n.log.Warn().Str("config_hash", mine).Dur("for_longer_than", n.drift.bound).
		Msg("config hash differs from the cluster majority; reloading everything from the database")
	select {
	case n.applier.reloadCh <- "config hash differs from the majority":
	default: // a reload is already queued
	}
}

// liveHashes is the config hash every member that answered in time serves now.
func (n *Node) liveHashes() []string {
	answers, err := n.gossip.QueryStatus(statusTimeout)
	if err != nil {
		n.log.Warn().Err(err).Msg("asking members for their config hash failed")
	}
	hashes := make([]string, 0, len(answers))
	for _, status := range answers {
		hashes = append(hashes, status[tagConfigHash])
	}
	return hashes
}
