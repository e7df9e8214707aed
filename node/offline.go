package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/grapevine-gw/grapevine/store"
)

// How a node waits for a database that does not answer at start, or that
// it serves its cache without: quickly at first, then every few seconds.
const (
	firstDBRetry = 250 * time.Millisecond
	maxDBRetry   = 5 * time.Second
)

// cachePath is where this node keeps its configuration cache; "" when it
// keeps none (no prefix).
func (n *Node) cachePath() string {
	if n.cfg.Prefix == "" {
		return ""
	}
	return filepath.Join(n.cfg.Prefix, cacheFileName)
}

// databaseID names the database the configuration comes from; a cache
// written from another one is foreign.
func (n *Node) databaseID() string {
	return n.cfg.PgHost + ":" + strconv.Itoa(n.cfg.PgPort) + "/" + n.cfg.PgDatabase
}

// firstSnapshot builds the snapshot the proxy opens with: from the
// database, or when it is out of reach from the configuration cache. With
// neither it keeps trying the database, saying why it does not serve yet,
// until ctx ends. A database that answers but is not migrated stops the
// start, as before.
func (n *Node) firstSnapshot(ctx context.Context) (fromCache bool, err error) {
	wait := firstDBRetry
	hasCache := n.hasCache()
	for attempt := 1; ; attempt++ {
		err := n.loadFromDatabase(ctx, n.pingTimeout(attempt, hasCache))
		if err == nil {
			return false, nil
		}
		if !unreachable(err) {
			return false, err
		}
		if attempt == 1 && n.loadFromCache(err) {
			return true, nil
		}
		n.log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", wait).Str("cache", n.cachePath()).
			Msg("not serving yet: the database is unreachable and there is no usable configuration cache")
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("opening database: %w", err)
		case <-time.After(wait):
		}
		wait = min(2*wait, maxDBRetry)
	}
}

// pingTimeout bounds the start's ping of the database. With a cache to
// serve, the first one waits no longer than the outage probe does
// (dbProbeTimeout): a database whose packets are dropped, not refused,
// would otherwise keep the node from serving its cache for a whole
// pg_timeout, when serving it is what the cache is for; the node keeps
// trying in the background (reconnectLoop). Without a cache there is
// nothing to serve meanwhile, and a slow database gets pg_timeout.
func (n *Node) pingTimeout(attempt int, hasCache bool) time.Duration {
	if attempt == 1 && hasCache {
		return min(dbProbeTimeout, n.dbTimeout())
	}
	return n.dbTimeout()
}

// hasCache says whether a configuration cache file exists; it is read and
// checked only when it is needed.
func (n *Node) hasCache() bool {
	path := n.cachePath()
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return err == nil
}

// unreachable reports whether err means the database did not answer, as
// opposed to answering with something wrong.
func unreachable(err error) bool {
	return errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// loadFromDatabase pings the database (within pingTimeout), checks the
// schema and loads the whole configuration.
func (n *Node) loadFromDatabase(ctx context.Context, pingTimeout time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	err := n.store.Ping(pctx)
	cancel()
	if err != nil {
		return fmt.Errorf("opening database (no answer within %s): %w", pingTimeout, err)
	}
	if err := n.withDB(ctx, n.store.CheckSchema); err != nil {
		return fmt.Errorf("checking database schema (run 'grapevine migrations bootstrap' or 'up'): %w", err)
	}
	if err := n.applier.loadAll(ctx); err != nil {
		return fmt.Errorf("building the first snapshot: %w", err)
	}
	return nil
}

// loadFromCache builds the first snapshot from the configuration cache and
// says so; a cache that is missing or fails its checks is never served.
func (n *Node) loadFromCache(dbErr error) bool {
	path := n.cachePath()
	if path == "" {
		return false
	}
	body, err := readCache(path, n.databaseID())
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	for _, note := range body.notes {
		n.log.Warn().Str("cache", path).Msg(note)
	}
	if err == nil {
		err = n.applier.loadCache(body)
	}
	if err != nil {
		n.log.Error().Err(err).Str("cache", path).Msg("the configuration cache is not served")
		return false
	}
	n.cachedPeers = body.Peers
	n.log.Warn().AnErr("database_error", dbErr).Str("cache", path).Time("cached_at", body.WrittenAt).
		Dur("age", time.Since(body.WrittenAt).Round(time.Second)).Str("config_hash", n.ConfigHash()).
		Msg("the database is unreachable: serving the configuration cache until it answers")
	return true
}

// reconnectLoop runs while the node serves its cache: it pings the
// database with backoff and, once it answers, has the applier reload
// everything, then registers the node.
func (n *Node) reconnectLoop(ctx context.Context) {
	wait := firstDBRetry
	for attempt := 1; ; attempt++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if s := n.applier.status.Load(); s != nil && !s.FromCache {
			if err := n.register(ctx); err != nil {
				n.log.Warn().Err(err).Msg("registering the node failed; the heartbeat retries")
			}
			return
		}
		if err := n.withDB(ctx, n.store.Ping); err != nil {
			wait = min(2*wait, maxDBRetry)
			if ctx.Err() == nil && attempt&(attempt-1) == 0 { // 1, 2, 4, 8…: a reminder, not a flood
				n.log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", wait).
					Msg("still serving the configuration cache: the database does not answer")
			}
			continue
		}
		select {
		case n.applier.reloadCh <- "the database answers again":
		default: // a reload is queued already
		}
		wait = firstDBRetry
	}
}

// cacheWriter writes the configuration cache each time the applier hands
// it new content.
func (n *Node) cacheWriter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-n.applier.cacheCh:
			n.writeCache(c)
		}
	}
}

// flushCache writes the changes still pending at shutdown; it runs after
// the applier and the writer stopped, so it may use their state.
func (n *Node) flushCache() {
	a := n.applier
	if a == nil || a.cacheCh == nil {
		return
	}
	if a.cacheDue != nil || a.cacheWantsWhole.Load() {
		// Joined with any content the writer did not take; whole again
		// when the last write failed.
		a.handOffCache()
	}
	select {
	case c := <-a.cacheCh:
		n.writeCache(c)
	default:
	}
	if n.cacheFiles != nil {
		n.cacheFiles.closeJournal()
	}
}

// writeCache stores content the applier handed over: a new base, or a
// journal record (cache.go, cachewrite.go). After a failure it asks the
// applier for the whole configuration next time.
func (n *Node) writeCache(c cacheContent) {
	if n.cacheFiles == nil {
		n.cacheFiles = &cacheFiles{path: n.cachePath()}
	}
	started := time.Now()
	meta := cacheMeta{WrittenAt: started.UTC(), Node: n.name, Database: n.databaseID(), ConfigHash: c.hash, Peers: n.peerAddrs()}
	done, err := n.cacheFiles.write(meta, c)
	if err != nil {
		n.applier.cacheWantsWhole.Store(true)
		n.log.Warn().Err(err).Str("cache", n.cachePath()).Msg("writing the configuration cache failed; a restart without the database would not serve this configuration")
		return
	}
	n.log.Debug().Bool("whole", done.whole).Bool("compacted", done.compacted).Int64("bytes", done.bytes).
		Int("changed", len(c.put)+len(c.deleted)).Dur("took", time.Since(started)).Str("config_hash", c.hash).
		Msg("configuration cache written")
}

// peerAddrs are the gossip addresses of the other alive members, kept in
// the cache so a node started without the registry can still find them.
func (n *Node) peerAddrs() []string {
	if n.gossip == nil {
		return nil
	}
	var out []string
	for _, m := range n.gossip.Members() {
		if m.Name != n.name && m.Status == "alive" && m.Addr != "" {
			out = append(out, m.Addr)
		}
	}
	return out
}
