package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/gossip"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/plugins"
	"github.com/grapevine-gw/grapevine/store"
)

const (
	// coalesceWindow gathers a burst of hints into one rebuild.
	coalesceWindow = 3 * time.Millisecond
	// maxHintedReads is how many entities one window's hints may have the
	// applier read one by one. A window naming more (a bulk write, or a
	// flood of forged hints naming entities that do not exist) is read
	// with one poll of cluster_events instead: one query whatever the
	// hints say, and it finds only changes that were committed. So a hint
	// flood costs at most one database read per window at any rate, and
	// the lone hint of an ordinary write is still read directly.
	maxHintedReads = 1
	// gapTimeout is how long a missing event id is waited for before it
	// is taken for a rolled-back transaction.
	gapTimeout = time.Minute
	// eventWindow is how many recent event ids a full load inspects to
	// tell committed ones from those still in flight.
	eventWindow = 10000
	// fullLoadCalls is how many pg_timeouts each call of a full load may
	// take (a page of rows, the recent events, as in one transaction),
	// where other calls read a row or a page.
	fullLoadCalls = 4
)

// applyRequest is a committed local write waiting to be live.
type applyRequest struct {
	change store.Change
	done   chan error
}

// applyStatus is what the applier last made live, for the cluster view
// and GET /status.
type applyStatus struct {
	Hash      string
	AppliedAt time.Time
	// FromCache is set while the node serves the configuration cache
	// written at CachedAt, not what it read from the database.
	FromCache bool
	CachedAt  time.Time
}

// applier is the one goroutine that owns the node's configuration state:
// it applies local writes, gossip hints and polled events, rebuilds the
// proxy snapshot and publishes the config hash.
type applier struct {
	store   *store.Store
	swap    func(*proxy.Snapshot)
	publish func(applyStatus)
	log     zerolog.Logger

	pollEvery time.Duration
	settle    time.Duration
	cacheTTL  time.Duration
	// dbTimeout (pg_timeout) bounds every database call: a database that
	// stops answering (packets dropped, not refused) would otherwise hold
	// this goroutine, and every change after it, for as long as TCP keeps
	// retrying.
	dbTimeout time.Duration
	// pollGapLimit is how long after the last successful poll unread
	// events may already be purged: the next poll is a full reload.
	pollGapLimit time.Duration

	state      *configState
	plugins    *plugins.Env // the credential index and what plugins share (plugins.go)
	tracker    *eventTracker
	lastPolled time.Time // last successful poll or full load; zero while serving the cache
	status     atomic.Pointer[applyStatus]

	// docs are the documents of every entity state and index hold, as
	// read, for the configuration cache (cache.go).
	docs      map[entityKey]json.RawMessage
	fromCache bool      // serving the cache: nothing read from the database yet
	cachedAt  time.Time // when the cache served was written
	// cacheCh hands the cache writer the newest content (capacity 1);
	// nil when the node keeps no cache. cacheDue fires when a burst of
	// changes is over and the cache is due to be written.
	cacheCh  chan cacheContent
	cacheDue <-chan time.Time
	// cacheChanged are the entities changed since the last hand-off, for
	// the cache's journal; cacheWhole is set instead after a full load,
	// and cacheWantsWhole by the writer when it has no base to append to.
	cacheChanged    map[entityKey]struct{}
	cacheWhole      bool
	cacheWantsWhole atomic.Bool

	localCh  chan applyRequest
	hintCh   chan gossip.Hint
	reloadCh chan string
	// declareCh brings a DB-less node's whole new configuration; declared
	// is the one served, nil with a database (dbless.go).
	declareCh chan declareRequest
	declared  map[string][]store.Row

	// waiting are the writers of the batch being applied; afterPanic
	// answers them if the batch never finishes.
	waiting     []chan error
	beforeApply func() // test hook; nil in production
	// hintPolls counts the windows of hints read by one poll, entityReads
	// the entities read one by one (tests and benchmarks read them).
	hintPolls, entityReads atomic.Int64
	// dbAnswered is told when a full load or a poll succeeded, so the
	// Admin API's outage gate opens without waiting for the next probe.
	dbAnswered func()
	// hintsRefused counts hints whose event the database did not have;
	// lastRefusedWarn rate-limits the warning about them.
	hintsRefused    atomic.Int64
	lastRefusedWarn time.Time
}

// errApplierPanicked answers the writers whose batch a panic interrupted;
// their writes are committed and arrive with the reload that follows.
var errApplierPanicked = errors.New("the applier panicked while applying this change; it restarts with a full reload")

// pendingWork is a batch of entities to re-read, with the events behind them.
type pendingWork struct {
	entities map[entityKey][]int64 // local writes and polled events: the database's word
	hints    map[int64]entityKey   // gossip hints by event id, counted only once the database shows them (admitHints)
	waiters  []chan error
}

func newPendingWork() *pendingWork {
	return &pendingWork{entities: map[entityKey][]int64{}, hints: map[int64]entityKey{}}
}

func (w *pendingWork) addChange(c store.Change) {
	key := entityKey{Table: c.Table, ID: c.ID}
	w.entities[key] = append(w.entities[key], c.EventID)
}

func (w *pendingWork) addHint(h gossip.Hint) {
	w.hints[h.EventID] = entityKey{Table: h.Table, ID: h.ID}
}

// loadAll builds the state from one consistent read of the database.
func (a *applier) loadAll(ctx context.Context) error {
	// Each call of the load (a page of rows) is bounded, not the whole:
	// a million consumers take longer than any fixed bound to read.
	load, err := a.store.LoadDocsBounded(ctx, append(tables(), indexTables()...), eventWindow, fullLoadCalls*a.dbTimeout)
	if err != nil {
		return fmt.Errorf("loading configuration: %w", err)
	}
	if err := a.replaceRows(load.Rows); err != nil {
		return err
	}
	visible := make(map[int64]entityKey, len(load.RecentEvents))
	for _, ev := range load.RecentEvents {
		visible[ev.ID] = entityKey{Table: ev.Table, ID: ev.EntityID}
	}
	a.tracker.reset(max(load.MaxEventID-eventWindow, 0), load.MaxEventID, visible, time.Now())
	a.lastPolled = time.Now()
	if a.fromCache {
		a.log.Warn().Msg("the database answers: serving its configuration instead of the cache")
	}
	a.fromCache = false
	if a.dbAnswered != nil {
		a.dbAnswered()
	}
	a.rebuild()
	a.markCacheDirty()
	return nil
}

// loadCache builds the state from the configuration cache. The tracker
// and lastPolled stay unset, so the first poll that reaches the database
// reloads everything: the events missed meanwhile may be purged.
func (a *applier) loadCache(body cacheBody) error {
	if err := a.replaceRows(cacheRows(body)); err != nil {
		return err
	}
	// The hash the writer recorded with the newest change: the base and
	// the journal replayed must give the configuration it was taken from.
	// (Formats 1 and 2 stored documents encoded again, not as read.)
	if got := a.state.hash(); body.version >= 3 && got != body.ConfigHash {
		return refuse("the configuration read back has hash %s, the cache recorded %s", got, body.ConfigHash)
	}
	a.fromCache, a.cachedAt = true, body.WrittenAt
	a.rebuild()
	return nil
}

// replaceRows replaces the state, the credential index and the cached
// documents with one whole configuration.
func (a *applier) replaceRows(rows map[string][]store.Row) error {
	docs := make(map[entityKey]json.RawMessage, rowCount(rows)) // sized: growing it rehashed it a dozen times
	for table, list := range rows {
		doc := cachedDocOf(table)
		for _, row := range list {
			docs[entityKey{Table: table, ID: row.ID}] = doc(row)
		}
	}
	if err := a.takeIndexRows(rows); err != nil {
		return err
	}
	state := a.newState()
	if err := state.replaceAll(rows); err != nil {
		return err
	}
	a.state, a.docs = state, docs
	a.cacheWhole, a.cacheChanged = true, nil
	return nil
}

// run serves the applier's inputs until ctx ends.
func (a *applier) run(ctx context.Context) {
	poll := newOptionalTicker(a.pollEvery)
	if a.store == nil {
		poll = newOptionalTicker(0) // DB-less: nothing to poll
	}
	defer poll.Stop()
	fullReload := newOptionalTicker(a.cacheTTL)
	defer fullReload.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-a.localCh:
			work := newPendingWork()
			work.addChange(req.change)
			work.waiters = append(work.waiters, req.done)
			a.drainLocal(work)
			a.apply(ctx, work)
		case h := <-a.hintCh:
			a.applyHinted(ctx, a.coalesceHints(ctx, h))
		case <-poll.C():
			a.poll(ctx)
		case req := <-a.declareCh:
			req.done <- a.loadDeclared(req.rows)
		case <-fullReload.C():
			a.reloadAll(ctx, "db_cache_ttl expired")
		case reason := <-a.reloadCh:
			a.reloadAll(ctx, reason)
		case <-a.cacheDue:
			a.cacheDue = nil
			a.handOffCache()
		}
	}
}

// drainLocal adds every local write already queued to the batch.
func (a *applier) drainLocal(work *pendingWork) {
	for {
		select {
		case req := <-a.localCh:
			work.addChange(req.change)
			work.waiters = append(work.waiters, req.done)
		default:
			return
		}
	}
}

// coalesceHints waits a few milliseconds for more hints so a burst costs
// one rebuild; a local write ends the wait early, it must not be delayed.
func (a *applier) coalesceHints(ctx context.Context, first gossip.Hint) *pendingWork {
	work := newPendingWork()
	work.addHint(first)
	timer := time.NewTimer(coalesceWindow)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return work
		case <-timer.C:
			return work
		case h := <-a.hintCh:
			work.addHint(h)
		case req := <-a.localCh:
			work.addChange(req.change)
			work.waiters = append(work.waiters, req.done)
			a.drainLocal(work)
			return work
		}
	}
}

// applyHinted applies one window's hints: entity by entity when they
// are few, else by one poll (maxHintedReads). A batch with local writes
// waiting, or on a node that has not polled yet (serving its cache: its
// first poll is a full reload), is applied as it is.
func (a *applier) applyHinted(ctx context.Context, work *pendingWork) {
	if len(work.waiters) > 0 || a.lastPolled.IsZero() || a.unappliedHints(work.hints) <= maxHintedReads {
		a.apply(ctx, work)
		return
	}
	a.hintPolls.Add(1)
	a.poll(ctx)
}

// unappliedHints counts the entities hinted with an event not applied yet.
func (a *applier) unappliedHints(hints map[int64]entityKey) int {
	keys := map[entityKey]bool{}
	for id, key := range hints {
		if !a.tracker.applied(id, key) {
			keys[key] = true
		}
	}
	return len(keys)
}

// apply re-reads the batch's entities, rebuilds the snapshot and answers
// the waiting writers. Entities whose events were all applied already are
// skipped (a hint for a change this node made or polled).
func (a *applier) apply(ctx context.Context, work *pendingWork) {
	a.waiting = work.waiters
	if a.beforeApply != nil {
		a.beforeApply()
	}
	a.admitHints(ctx, work)
	err := a.applyEntities(ctx, work.entities)
	a.waiting = nil
	for _, done := range work.waiters {
		done <- err
	}
	if err != nil {
		a.log.Warn().Err(err).Msg("applying changes failed; polling will retry")
	}
}

// admitHints moves the batch's hints whose events the database holds, for
// the entity they name, into its entities; the others are dropped. A hint
// is sent after its commit, so a real one is visible by now. A forged one
// (gossip is open to anyone who reaches it when cluster_encrypt_key is
// unset) costs this one read and is never recorded as applied: recorded,
// it would make the node skip the real event of that id later, and its id
// would stay in the tracker for good. The check comes before the entity is
// read, so a read that follows an admitted event sees its commit.
func (a *applier) admitHints(ctx context.Context, work *pendingWork) {
	ids := make([]int64, 0, len(work.hints))
	for id, key := range work.hints {
		if id > 0 && !a.tracker.applied(id, key) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, a.dbTimeout)
	defer cancel()
	events, err := a.store.EventsByID(ctx, ids)
	if err != nil {
		a.log.Warn().Err(err).Int("hints", len(ids)).Msg("checking hints failed; polling will pick their changes up")
		return
	}
	for _, ev := range events {
		key := entityKey{Table: ev.Table, ID: ev.EntityID}
		if work.hints[ev.ID] == key {
			work.entities[key] = append(work.entities[key], ev.ID)
		}
	}
	if dropped := len(ids) - len(events); dropped > 0 {
		a.hintsRefused.Add(int64(dropped))
		a.noteRefusedHints(dropped)
	}
}

// noteRefusedHints warns of hints naming events the database does not
// have, at most once a minute: a peer sending them is broken or hostile.
func (a *applier) noteRefusedHints(n int) {
	if time.Since(a.lastRefusedWarn) < time.Minute {
		return
	}
	a.lastRefusedWarn = time.Now()
	a.log.Warn().Int("hints", n).Int64("refused_so_far", a.hintsRefused.Load()).
		Msg("gossip hints name changes the database does not have; ignored (a broken or hostile peer? set cluster_encrypt_key)")
}

func (a *applier) applyEntities(ctx context.Context, entities map[entityKey][]int64) error {
	if ids, ok := entities[reloadAllKey]; ok && !a.allApplied(reloadAllKey, ids) {
		// A whole replacement (a declarative import): one full load
		// covers it and every other change of the batch.
		a.log.Info().Msg("the whole configuration was replaced: reloading it")
		return a.loadAll(ctx)
	}
	changed := false
	for key, eventIDs := range entities {
		if a.allApplied(key, eventIDs) {
			continue
		}
		indexed := isIndexTable(key.Table) && a.plugins != nil
		a.entityReads.Add(1)
		if indexed {
			if err := a.reloadIndexed(ctx, key); err != nil {
				return err
			}
		} else if err := a.reloadEntity(ctx, key); err != nil {
			return err
		}
		for _, id := range eventIDs {
			a.tracker.markApplied(id, key)
		}
		changed = changed || !indexed
		a.markCacheDirty()
	}
	if changed {
		a.rebuild()
	}
	return nil
}

// reloadAllKey is the event of a whole import of the configuration
// (store.UpsertAll).
var reloadAllKey = entityKey{Table: store.ReloadAllTable, ID: store.ReloadAllID}

// markCacheDirty schedules a cache write after cacheWriteDelay, so a burst
// of changes costs one write, off the applier's and the proxy's way.
func (a *applier) markCacheDirty() {
	if a.cacheCh != nil && a.cacheDue == nil && !a.fromCache {
		a.cacheDue = time.After(cacheWriteDelay)
	}
}

// setDoc and dropDoc keep the documents served, and note the entity for
// the cache's next journal record.
func (a *applier) setDoc(key entityKey, doc json.RawMessage) {
	a.docs[key] = doc
	a.cacheChange(key)
}

func (a *applier) dropDoc(key entityKey) {
	delete(a.docs, key)
	a.cacheChange(key)
}

func (a *applier) cacheChange(key entityKey) {
	if a.cacheCh == nil || a.cacheWhole {
		return
	}
	if a.cacheChanged == nil {
		a.cacheChanged = map[entityKey]struct{}{}
	}
	a.cacheChanged[key] = struct{}{}
}

// cacheContent takes what the cache must store since the last hand-off:
// the entities changed (their documents, or their deletion), or every
// entity after a full load. Documents are never changed once read, so
// the content shares them.
func (a *applier) cacheContent() cacheContent {
	if a.cacheWantsWhole.Swap(false) {
		a.cacheWhole = true
	}
	c := cacheContent{whole: a.cacheWhole, hash: a.state.hash()}
	if c.whole {
		c.put = make([]cacheLine, 0, len(a.docs))
		for k, doc := range a.docs {
			c.put = append(c.put, cacheLine{Table: k.Table, cachedRow: cachedRow{ID: k.ID, Doc: doc}})
		}
	} else {
		for k := range a.cacheChanged {
			if doc, ok := a.docs[k]; ok {
				c.put = append(c.put, cacheLine{Table: k.Table, cachedRow: cachedRow{ID: k.ID, Doc: doc}})
			} else {
				c.deleted = append(c.deleted, cacheKey(k))
			}
		}
	}
	a.cacheWhole, a.cacheChanged = false, nil
	return c
}

// handOffCache gives the cache writer the newest content. Content it has
// not taken yet is taken back and joined with the new: changes are
// merged, and whole content stays whole.
func (a *applier) handOffCache() {
	if a.fromCache {
		return
	}
	c := a.cacheContent()
	for {
		select {
		case a.cacheCh <- c:
			return
		default:
		}
		select {
		case older := <-a.cacheCh:
			c = a.joinCache(older, c)
		default:
		}
	}
}

// joinCache is older's content followed by newer's.
func (a *applier) joinCache(older, newer cacheContent) cacheContent {
	if newer.whole {
		return newer
	}
	if older.whole {
		a.cacheWhole = true // every document, as they are now
		return a.cacheContent()
	}
	keys := make(map[entityKey]struct{}, len(newer.put)+len(newer.deleted))
	for _, l := range newer.put {
		keys[entityKey{Table: l.Table, ID: l.ID}] = struct{}{}
	}
	for _, k := range newer.deleted {
		keys[entityKey(k)] = struct{}{}
	}
	for _, l := range older.put {
		if _, ok := keys[entityKey{Table: l.Table, ID: l.ID}]; !ok {
			newer.put = append(newer.put, l)
		}
	}
	for _, k := range older.deleted {
		if _, ok := keys[entityKey(k)]; !ok {
			newer.deleted = append(newer.deleted, k)
		}
	}
	return newer
}

func (a *applier) allApplied(key entityKey, eventIDs []int64) bool {
	for _, id := range eventIDs {
		if id == 0 || !a.tracker.applied(id, key) {
			return false
		}
	}
	return true
}

// reloadEntity reads one entity's current row; a missing row was deleted.
func (a *applier) reloadEntity(ctx context.Context, key entityKey) error {
	table, ok := tableByName(key.Table)
	if !ok {
		return nil // a hint for a table this node does not serve from
	}
	ctx, cancel := context.WithTimeout(ctx, a.dbTimeout)
	defer cancel()
	row, err := a.store.Get(ctx, table, key.ID)
	if errors.Is(err, store.ErrNotFound) {
		a.state.remove(key)
		a.dropDoc(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reloading %s %s: %w", key.Table, key.ID, err)
	}
	if err := a.state.put(key.Table, row); err != nil {
		return err
	}
	a.setDoc(key, cachedDoc(key.Table, row))
	return nil
}

func tableByName(name string) (store.Table, bool) {
	for _, t := range tables() {
		if t.Name == name {
			return t, true
		}
	}
	return store.Table{}, false
}

// poll reads the events this node has not applied, from its watermark on.
// After a long stretch without a successful poll (the database out of
// reach) some of those events may be purged already, so it reloads
// everything instead.
func (a *applier) poll(ctx context.Context) {
	if a.lastPolled.IsZero() {
		a.reloadAll(ctx, "serving the configuration cache: catching up from the database")
		return
	}
	if since := time.Since(a.lastPolled); since >= a.pollGapLimit {
		a.reloadAll(ctx, fmt.Sprintf("no successful poll for %s: events this node missed may be purged", since.Round(time.Second)))
		return
	}
	cursor := a.tracker.watermark
	for {
		events, err := a.eventsSince(ctx, cursor)
		if err != nil {
			a.log.Warn().Err(err).Msg("polling cluster_events failed; serving the last configuration")
			return
		}
		if err := a.applyEvents(ctx, events); err != nil {
			a.log.Warn().Err(err).Msg("applying polled events failed; will retry")
			return
		}
		if len(events) < store.DefaultEventsLimit {
			break
		}
		cursor = events[len(events)-1].ID
	}
	a.lastPolled = time.Now()
	a.tracker.advance(time.Now())
	if a.dbAnswered != nil {
		a.dbAnswered()
	}
}

// eventsSince reads one page of events within the call deadline.
func (a *applier) eventsSince(ctx context.Context, cursor int64) ([]store.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, a.dbTimeout)
	defer cancel()
	return a.store.EventsSince(ctx, cursor, store.DefaultEventsLimit)
}

// applyEvents applies a page of polled events, leaving out those younger
// than db_update_propagation (they are read again on the next poll).
func (a *applier) applyEvents(ctx context.Context, events []store.Event) error {
	work := map[entityKey][]int64{}
	var maxID int64
	for _, ev := range events {
		if a.settle > 0 && time.Since(ev.At) < a.settle {
			break
		}
		key := entityKey{Table: ev.Table, ID: ev.EntityID}
		work[key] = append(work[key], ev.ID)
		maxID = ev.ID
	}
	if err := a.applyEntities(ctx, work); err != nil {
		return err
	}
	a.tracker.observedUpTo(maxID, time.Now())
	return nil
}

// afterPanic runs on the applier goroutine after a panic, before it runs
// again: it answers the writers the interrupted batch held, and queues a
// full reload, since the panic may have left the state half-changed.
func (a *applier) afterPanic() {
	for _, done := range a.waiting {
		done <- errApplierPanicked // buffered: never blocks
	}
	a.waiting = nil
	select {
	case a.reloadCh <- "the applier restarted after a panic":
	default: // a reload is already queued
	}
}

// reloadAll replaces the whole state from the database.
func (a *applier) reloadAll(ctx context.Context, reason string) {
	if a.store == nil {
		a.log.Info().Str("reason", reason).Msg("rebuilding the declarative configuration served")
		if err := a.loadDeclared(a.declared); err != nil {
			a.log.Error().Err(err).Msg("rebuilding the declarative configuration failed")
		}
		return
	}
	a.log.Info().Str("reason", reason).Msg("reloading the whole configuration from the database")
	if err := a.loadAll(ctx); err != nil {
		a.log.Warn().Err(err).Msg("full reload failed; serving the last configuration")
	}
}

// rebuild swaps in a snapshot of the current state and publishes its hash.
func (a *applier) rebuild() {
	snap, warnings := a.state.snapshot()
	for _, w := range warnings {
		a.log.Warn().Err(w).Msg("left out of the snapshot")
	}
	a.swap(snap)
	status := applyStatus{Hash: a.state.hash(), AppliedAt: time.Now(), FromCache: a.fromCache, CachedAt: a.cachedAt}
	a.status.Store(&status)
	if a.publish != nil {
		a.publish(status)
	}
}

// optionalTicker is a ticker that never fires when its period is zero.
type optionalTicker struct{ t *time.Ticker }

func newOptionalTicker(d time.Duration) optionalTicker {
	if d <= 0 {
		return optionalTicker{}
	}
	return optionalTicker{time.NewTicker(d)}
}

func (o optionalTicker) C() <-chan time.Time {
	if o.t == nil {
		return nil
	}
	return o.t.C
}

func (o optionalTicker) Stop() {
	if o.t != nil {
		o.t.Stop()
	}
}
