package node

import "time"

// entityKey names one entity: its table and id.
type entityKey struct {
	Table string
	ID    string
}

// eventTracker remembers which cluster_events this node has applied.
// Sequence ids are handed out when a transaction inserts its event but
// become visible when it commits, so they commit out of order: event 11
// can be visible before event 10. A watermark on the highest id alone
// would skip 10 for good. The tracker keeps a low watermark (every id at or
// below it is applied or given up) plus, above it, the ids seen and the
// gaps still expected; polling reads from the watermark, so a late commit
// is picked up when it appears. A gap that stays empty longer than
// gapTimeout belonged to a rolled-back transaction and is given up.
//
// Owned by the node's applier goroutine; not safe for concurrent use.
type eventTracker struct {
	watermark  int64
	seen       map[int64]entityKey // applied ids above the watermark
	gaps       map[int64]time.Time // missing ids above the watermark, and when first noticed
	gapTimeout time.Duration
}

func newEventTracker(gapTimeout time.Duration) *eventTracker {
	return &eventTracker{seen: map[int64]entityKey{}, gaps: map[int64]time.Time{}, gapTimeout: gapTimeout}
}

// reset starts over from a consistent snapshot: every id at or below floor
// is covered by it, and so are the ids in visible (committed when the
// snapshot was taken); the other ids between floor and max are gaps,
// transactions that were still in flight.
func (t *eventTracker) reset(floor, max int64, visible map[int64]entityKey, now time.Time) {
	t.watermark = floor
	t.seen = map[int64]entityKey{}
	t.gaps = map[int64]time.Time{}
	for id, key := range visible {
		if id > floor {
			t.seen[id] = key
		}
	}
	t.noteGapsUpTo(max, now)
	t.advance(now)
}

// applied reports whether the event id was already applied for key. A
// hint only counts for the entity it named, so a forged hint cannot make
// the node skip a real event with the same id.
func (t *eventTracker) applied(id int64, key entityKey) bool {
	if id <= t.watermark {
		return true
	}
	got, ok := t.seen[id]
	return ok && got == key
}

// markApplied records that event id (for key) is live on this node.
func (t *eventTracker) markApplied(id int64, key entityKey) {
	if id <= t.watermark {
		return
	}
	t.seen[id] = key
	delete(t.gaps, id)
}

// observedUpTo records that the database showed events up to max: any id
// below it not yet applied is a gap to wait for.
func (t *eventTracker) observedUpTo(max int64, now time.Time) {
	t.noteGapsUpTo(max, now)
	t.advance(now)
}

func (t *eventTracker) noteGapsUpTo(max int64, now time.Time) {
	for id := t.watermark + 1; id < max; id++ {
		if _, ok := t.seen[id]; ok {
			continue
		}
		if _, ok := t.gaps[id]; !ok {
			t.gaps[id] = now
		}
	}
}

// advance moves the watermark over every applied id and every gap older
// than the timeout, stopping at the first gap still worth waiting for.
func (t *eventTracker) advance(now time.Time) {
	for {
		next := t.watermark + 1
		if _, ok := t.seen[next]; ok {
			delete(t.seen, next)
			t.watermark = next
			continue
		}
		if since, ok := t.gaps[next]; ok && now.Sub(since) >= t.gapTimeout {
			delete(t.gaps, next)
			t.watermark = next
			continue
		}
		return
	}
}

// pendingGaps is how many ids the tracker is still waiting for.
func (t *eventTracker) pendingGaps() int { return len(t.gaps) }
