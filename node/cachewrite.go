package node

import (
	"errors"
	"fmt"
	"os"
)

// cacheFiles is the writer's side of the configuration cache (cache.go):
// the base it wrote last, the journal it appends to and, for compaction,
// every change that journal holds. Only the cache writer goroutine uses
// it (and flushCache, after that goroutine stopped).
type cacheFiles struct {
	path string
	base cacheBase
	// journal is open for appending after a base was written; nil before
	// the first base of this process and after a failed write: the next
	// write must then be a whole configuration.
	journal     *os.File
	journalSize int64
	// journaled are the entities the journal changes, the newest change
	// of each (a nil Doc: deleted), overlaid on the base when compacting.
	journaled map[entityKey]cacheLine
	meta      cacheMeta // of the newest write
	// minCompact overrides minCompactBytes when set (tests).
	minCompact int64
}

// errCacheNeedsWhole is a change the writer has no base to append to.
var errCacheNeedsWhole = errors.New("no base to append the change to: the next write is a whole configuration")

// cacheWrite is what one write did, for the log.
type cacheWrite struct {
	whole, compacted bool
	bytes            int64 // the base's size, or the record's
}

// write stores c: a whole configuration as a new base and an empty
// journal, changes as one journal record, merging the journal into a new
// base once it outgrew its share. On error the files on disk still hold a
// configuration this node served (the torn record, if any, is dropped on
// load), and the next write must be whole.
func (w *cacheFiles) write(meta cacheMeta, c cacheContent) (cacheWrite, error) {
	if c.whole {
		w.closeJournal()
		base, err := writeCacheBase(w.path, meta, lines(c.put))
		if err != nil {
			return cacheWrite{}, err
		}
		w.base, w.meta = base, meta
		return cacheWrite{whole: true, bytes: base.size}, w.startJournal()
	}
	if w.journal == nil {
		return cacheWrite{}, errCacheNeedsWhole
	}
	frame, err := journalFrame(journalRecord{WrittenAt: meta.WrittenAt, ConfigHash: meta.ConfigHash, Peers: meta.Peers, Put: c.put, Deleted: c.deleted})
	if err != nil {
		return cacheWrite{}, err
	}
	if _, err := w.journal.Write(frame); err != nil {
		w.closeJournal()
		return cacheWrite{}, fmt.Errorf("appending to %s: %w", w.path+cacheJournalSuffix, err)
	}
	if err := w.journal.Sync(); err != nil {
		w.closeJournal()
		return cacheWrite{}, fmt.Errorf("syncing %s: %w", w.path+cacheJournalSuffix, err)
	}
	w.journalSize += int64(len(frame))
	w.meta = meta
	for _, k := range c.deleted {
		w.journaled[entityKey(k)] = cacheLine{Table: k.Table, cachedRow: cachedRow{ID: k.ID}}
	}
	for _, l := range c.put {
		w.journaled[entityKey{Table: l.Table, ID: l.ID}] = l
	}
	done := cacheWrite{bytes: int64(len(frame))}
	least := int64(minCompactBytes)
	if w.minCompact > 0 {
		least = w.minCompact
	}
	if w.journalSize > max(w.base.size/compactFraction, least) {
		if err := w.compact(); err != nil {
			w.closeJournal()
			return done, fmt.Errorf("compacting the configuration cache: %w", err)
		}
		done.compacted = true
	}
	return done, nil
}

// startJournal replaces the journal with an empty one continuing the base
// just written, and opens it for appending.
func (w *cacheFiles) startJournal() error {
	path := w.path + cacheJournalSuffix
	header := journalHeader(w.base.sum)
	if err := writeCacheFile(path, header); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	w.journal, w.journalSize, w.journaled = f, int64(len(header)), map[entityKey]cacheLine{}
	return nil
}

func (w *cacheFiles) closeJournal() {
	if w.journal != nil {
		w.journal.Close()
		w.journal = nil
	}
}

// compact merges the base and the journal into a new base: the old base
// is streamed from disk (checked against the checksum this writer wrote
// it with, so a base damaged on disk is never made whole again), each
// entity replaced by its newest journaled change, then the entities the
// journal created; memory holds the journal's changes, never the whole
// configuration.
func (w *cacheFiles) compact() error {
	old, err := os.Open(w.path)
	if err != nil {
		return err
	}
	defer old.Close()
	fi, err := old.Stat()
	if err != nil {
		return err
	}
	meta := w.meta
	base, err := writeCacheBase(w.path, meta, func(emit func(cacheLine) error) error {
		_, oldBase, err := scanCacheBase(old, fi.Size(), meta.Database, func(l cacheLine) error {
			if _, changed := w.journaled[entityKey{Table: l.Table, ID: l.ID}]; changed {
				return nil
			}
			return emit(l)
		})
		if err != nil {
			return err
		}
		if oldBase.sum != w.base.sum {
			return fmt.Errorf("%s changed on disk since this node wrote it", w.path)
		}
		for _, l := range w.journaled {
			if l.Doc != nil {
				if err := emit(l); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.closeJournal()
	w.base = base
	return w.startJournal()
}
