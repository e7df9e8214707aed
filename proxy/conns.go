package proxy

import (
	"cmp"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// clientConns is the proxy's listener and the owner of its client
// connections. A flood of clients must not take the proxy down, so it
//   - survives accept errors (out of descriptors above all) by backing off
//     and retrying, as net/http does, where fasthttp would stop serving;
//   - caps open connections at max (nginx's worker_connections), and at the
//     cap closes the connections idle longest to make room, as nginx
//     reuses its idle keep-alive and not-yet-used connections;
//   - remembers whether accepting fails, for the health check.
//
// Accept runs on fasthttp's accept goroutine; track runs on each
// connection's goroutine; Close of a connection may come from any.
type clientConns struct {
	net.Listener
	*connTable
	// tls, when set, makes this a TLS listener: each connection is
	// served through a TLS server handshake with this configuration.
	tls *tls.Config
	// h2c serves a plain connection that opens with the HTTP/2 preface;
	// nil: HTTP/1 only (h2.go).
	h2c func(net.Conn) error
}

// connTable is what the listeners of one proxy share: the count and cap
// of open client connections, and whether accepting fails.
type connTable struct {
	max         int           // open connections allowed; 0 means no cap
	slack       time.Duration // deadline slack of each connection (see coarseConn)
	sendTimeout time.Duration // longest wait for one write to a client (nginx's send_timeout)
	log         zerolog.Logger

	accepted atomic.Int64 // connections accepted, including those closed at the cap
	open     atomic.Int64 // connections accepted and not yet closed

	mu    sync.Mutex // guards conns
	conns map[*coarseConn]struct{}

	failing    atomic.Pointer[acceptFailure] // set while Accept keeps failing
	lastFailed atomic.Pointer[acceptFailure] // the last failure period, kept after it ends
	lastCapLog atomic.Int64                  // unix nanoseconds of the last cap warning
}

// acceptFailure is an accept error that has not been followed by a
// successful accept yet.
type acceptFailure struct {
	err   error
	since time.Time
	ended time.Time // when accepting worked again; zero while it fails
}

const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
	// capLogEvery spaces the warnings about the connection cap and accept
	// errors, which a flood would otherwise repeat thousands of times.
	capLogEvery = 10 * time.Second
	// minDrain is how many idle connections are closed at once when room is
	// needed (nginx drains 32), so a flood does not rescan per accept.
	minDrain = 32
)

func newConnTable(max int, sendTimeout time.Duration, log zerolog.Logger) *connTable {
	return &connTable{
		max:         max,
		slack:       slackFor(idleTimeout),
		sendTimeout: sendTimeout,
		log:         log,
		conns:       make(map[*coarseConn]struct{}),
	}
}

// newClientConns makes ln one of the listeners counted in table.
func newClientConns(ln net.Listener, table *connTable) *clientConns {
	return &clientConns{Listener: ln, connTable: table}
}

// Accept returns the next client connection. Only a closed listener ends
// it; every other error is logged and retried after a growing pause.
func (l *clientConns) Accept() (net.Conn, error) {
	backoff := time.Duration(0)
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			backoff = min(max(2*backoff, minAcceptBackoff), maxAcceptBackoff)
			l.acceptFailed(err, backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if f := l.failing.Swap(nil); f != nil {
			l.lastFailed.Store(&acceptFailure{err: f.err, since: f.since, ended: time.Now()})
			l.log.Warn().Dur("failed_for", time.Since(f.since)).Msg("proxy accepts connections again")
		}
		l.accepted.Add(1)
		if l.max > 0 && l.open.Load() >= int64(l.max) && !l.makeRoom() {
			l.warnCap()
			c.Close()
			continue
		}
		cc := l.track(c)
		if l.tls != nil {
			return tls.Server(cc, l.tls), nil
		}
		if l.h2c != nil {
			return &h2cConn{Conn: cc, serve: l.h2c}, nil
		}
		return cc, nil
	}
}

// acceptFailed records and logs a failed accept; out of descriptors, it
// also frees some by closing idle connections.
func (l *connTable) acceptFailed(err error, backoff time.Duration) {
	now := time.Now()
	first := l.failing.CompareAndSwap(nil, &acceptFailure{err: err, since: now})
	if !first {
		l.failing.Store(&acceptFailure{err: err, since: l.failing.Load().since})
	}
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		l.makeRoom()
	}
	if first || l.logDue(now) {
		l.log.Error().Err(err).Int64("open_connections", l.open.Load()).Dur("retry_in", backoff).
			Msg("proxy cannot accept connections; raise the descriptor limit (ulimit -n, nginx_main_worker_rlimit_nofile) or lower nginx_events_worker_connections")
	}
}

func (l *connTable) warnCap() {
	if l.logDue(time.Now()) {
		l.log.Warn().Int("nginx_events_worker_connections", l.max).
			Msg("proxy connection limit reached and no idle connection to close; new connections are closed")
	}
}

// logDue reports whether capLogEvery has passed since the last warning,
// and if so starts a new period.
func (l *connTable) logDue(now time.Time) bool {
	last := l.lastCapLog.Load()
	return now.UnixNano()-last >= int64(capLogEvery) && l.lastCapLog.CompareAndSwap(last, now.UnixNano())
}

// track wraps c as a client connection and counts it open until closed.
func (l *clientConns) track(c net.Conn) *coarseConn {
	if _, ok := c.(*net.TCPConn); ok {
		c = newRawIOConn(c)
	}
	cc := &coarseConn{Conn: c, slack: l.slack, sendTimeout: l.sendTimeout, owner: l}
	cc.idleSince.Store(time.Now().UnixNano())
	l.open.Add(1)
	l.mu.Lock()
	l.conns[cc] = struct{}{}
	l.mu.Unlock()
	return cc
}

// forget is called once by a tracked connection's Close.
func (l *connTable) forget(cc *coarseConn) {
	l.mu.Lock()
	delete(l.conns, cc)
	l.mu.Unlock()
	l.open.Add(-1)
}

// makeRoom closes the connections idle longest: at least one, and a
// sixty-fourth of the cap (minDrain at least) when that many are idle. It
// reports whether it closed any.
func (l *connTable) makeRoom() bool {
	type idleConn struct {
		cc    *coarseConn
		since int64
	}
	l.mu.Lock()
	idle := make([]idleConn, 0, len(l.conns)/4)
	for cc := range l.conns {
		if since := cc.idleSince.Load(); since != 0 {
			idle = append(idle, idleConn{cc, since})
		}
	}
	l.mu.Unlock()
	n := min(len(idle), max(minDrain, l.max/64))
	if n == 0 {
		return false
	}
	slices.SortFunc(idle, func(a, b idleConn) int { return cmp.Compare(a.since, b.since) })
	for _, ic := range idle[:n] {
		ic.cc.Close()
	}
	l.log.Info().Int("closed", n).Int64("open_connections", l.open.Load()).
		Msg("proxy closed idle connections to make room for new ones")
	return true
}

// closeIdleFor closes the connections idle for d or longer.
func (l *connTable) closeIdleFor(d time.Duration, now time.Time) {
	before := now.Add(-d).UnixNano()
	l.mu.Lock()
	var idle []*coarseConn
	for cc := range l.conns {
		if since := cc.idleSince.Load(); since != 0 && since <= before {
			idle = append(idle, cc)
		}
	}
	l.mu.Unlock()
	for _, cc := range idle {
		cc.Close()
	}
}

// connState is fasthttp's hook on each connection's state change: a
// connection waiting for a request (new or keep-alive) is idle.
func connState(c net.Conn, state fasthttp.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if hc, ok := c.(*h2cConn); ok {
		c = hc.Conn
	}
	cc, ok := c.(*coarseConn)
	if !ok {
		return
	}
	switch state {
	case fasthttp.StateNew, fasthttp.StateIdle:
		cc.idleSince.Store(time.Now().UnixNano())
	default:
		cc.idleSince.Store(0)
	}
}

// acceptErrorMemory is how long a failure to accept keeps the proxy
// reported unhealthy after accepting worked again: out of descriptors,
// the proxy frees some by closing idle connections and accepts again
// within milliseconds, and a health check polling every few seconds would
// never see a failure that comes back with every newcomer.
const acceptErrorMemory = 10 * time.Second

// acceptError is the error accepting connections fails with now, or
// failed with within acceptErrorMemory, and since when; nil when the
// proxy accepts.
func (l *connTable) acceptError() (error, time.Time) {
	if f := l.failing.Load(); f != nil {
		return f.err, f.since
	}
	if f := l.lastFailed.Load(); f != nil && time.Since(f.ended) < acceptErrorMemory {
		return f.err, f.since
	}
	return nil, time.Time{}
}
