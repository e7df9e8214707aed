package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Upstream connections live in a pool owned by the Server, keyed by address
// and connection settings, so keep-alive connections survive snapshot swaps:
// a new snapshot for the same service gets the same upstreamClient.

type clientKey struct {
	addr string
	host string // TLS server name
	// tls is the upstream TLS configuration, nil for plain HTTP. The
	// Builder hands equal configurations the same pointer (see
	// Builder.upstreamTLS), so it keys like a value.
	tls     *tls.Config
	connect time.Duration
	read    time.Duration
	write   time.Duration
}

func keyFor(svc *service) clientKey {
	return clientKey{
		addr:    svc.addr,
		host:    svc.host,
		tls:     svc.tls,
		connect: svc.connect,
		read:    svc.read,
		write:   svc.write,
	}
}

// dialFunc opens a connection to an upstream (TLS included); its failures
// are connectErrors.
type dialFunc func() (net.Conn, error)

type clientPool struct {
	mu      sync.Mutex // guards clients
	clients map[clientKey]*upstreamClient
	// dial makes the dialFunc of k's client; tests swap it for in-memory
	// connections.
	dial func(k clientKey) dialFunc
	// maxBody is the clients' cap on a buffered answer body:
	// maxResponseBody, smaller in tests.
	maxBody int
}

func newClientPool(resolver *net.Resolver, order []uint16) *clientPool {
	return &clientPool{clients: make(map[clientKey]*upstreamClient), dial: tcpDialerWith(resolver, order), maxBody: maxResponseBody}
}

// bind returns the client for each of snap's services, indexed like
// snap.services, and closes the idle connections of clients no longer used.
func (p *clientPool) bind(snap *Snapshot) []*upstreamClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*upstreamClient, len(snap.services))
	used := make(map[clientKey]bool, len(snap.services))
	for i, svc := range snap.services {
		if !svc.proxyable {
			continue
		}
		k := keyFor(svc)
		c, ok := p.clients[k]
		if !ok {
			c = p.newClient(k)
			p.clients[k] = c
		}
		out[i], used[k] = c, true
	}
	for k, c := range p.clients {
		if !used[k] {
			// Requests still running on the old snapshot keep working: an
			// evicted client just stops being reused.
			c.closeIdle()
			delete(p.clients, k)
		}
	}
	return out
}

// newClient makes the client for k with the pool's settings.
func (p *clientPool) newClient(k clientKey) *upstreamClient {
	return &upstreamClient{key: k, dial: p.dial(k), dialer: p.dial, maxBody: p.maxBody}
}

func (p *clientPool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.clients {
		c.closeIdle()
	}
}

// tcpDialerWith makes the pool's dialers, looking hosts up with resolver,
// SRV records first when dns_order asks them.
func tcpDialerWith(resolver *net.Resolver, order []uint16) func(clientKey) dialFunc {
	return func(k clientKey) dialFunc { return tcpDialer(k, resolver, newServiceSRV(resolver, k.addr, order)) }
}

// tcpDialer opens upstream connections within connect_timeout (the TLS
// handshake included) and marks its failures as connect errors, which are
// always safe to retry. Connections keep their read and write deadlines
// coarsely (see coarseConn).
func tcpDialer(k clientKey, resolver *net.Resolver, srv *serviceSRV) dialFunc {
	slack := slackFor(min(k.read, k.write))
	d := &net.Dialer{Timeout: k.connect, KeepAlive: 60 * time.Second, Resolver: resolver}
	var tlsConfig *tls.Config
	if k.tls != nil {
		tlsConfig = k.tls.Clone()
		tlsConfig.ServerName = strings.Trim(k.host, "[]")
	}
	return func() (net.Conn, error) {
		addr := k.addr
		if srv != nil {
			if a, ok := srv.pick(k.connect); ok {
				addr = a
			}
		}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			return nil, &connectError{err: err}
		}
		conn = wrapUpstreamConn(conn, slack)
		if tlsConfig == nil {
			return conn, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), k.connect)
		defer cancel()
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, &connectError{err: fmt.Errorf("tls handshake: %w", err)}
		}
		return tc, nil
	}
}

// upstreamClient sends requests to one upstream over keep-alive
// connections it pools. A request never waits for a connection: without
// an idle one it dials, as nginx does.
type upstreamClient struct {
	key  clientKey
	dial dialFunc

	// maxBody caps the buffered body of an answer (maxResponseBody).
	maxBody int

	// dialer makes the dialFunc of a variant (see forServerName).
	dialer func(clientKey) dialFunc

	mu   sync.Mutex      // guards idle and named
	idle []*upstreamConn // oldest first; reused from the end
	// named are the clients of this TLS upstream for other server names,
	// by name: with preserve_host the client's Host is the SNI sent.
	named map[string]*upstreamClient
}

// maxNamedClients bounds the server names one TLS upstream gets clients
// for, so clients sending made-up Host headers cannot grow it without
// end; past it the service's host is the server name.
const maxNamedClients = 256

// forServerName returns the client sending name as the TLS server name,
// made on first use: Kong sends the upstream Host as SNI (nginx's
// proxy_ssl_name $upstream_host), which preserve_host makes the client's.
func (c *upstreamClient) forServerName(name []byte) *upstreamClient {
	if len(name) == 0 || string(name) == c.key.host || c.dialer == nil {
		return c
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.named[string(name)]; v != nil {
		return v
	}
	if len(c.named) >= maxNamedClients {
		return c
	}
	k := c.key
	k.host = string(name)
	v := &upstreamClient{key: k, dial: c.dialer(k), maxBody: c.maxBody}
	if c.named == nil {
		c.named = map[string]*upstreamClient{}
	}
	c.named[k.host] = v
	return v
}

// upstreamConn is one keep-alive connection to an upstream.
type upstreamConn struct {
	net.Conn
	// sock is the socket under Conn (under TLS too), whose byte counts
	// and probe read tell what happened on the wire; nil when Conn is not
	// one (tests' in-memory connections), and then nothing is checked.
	sock      *rawIOConn
	idleSince time.Time
	reused    bool    // taken from the pool rather than just dialled
	probeBuf  [1]byte // probeIdle's read buffer, here so it does not allocate

	// Guarded by the client's mu: pops counts the times the connection
	// was taken from the pool; a sweep that found it clean while it sat
	// there records when (cleanAt) and at which pop count (cleanPops), so
	// the finding holds only until the connection is next taken.
	pops      uint64
	cleanAt   time.Time
	cleanPops uint64
}

const (
	// maxIdleConns caps the idle connections kept per upstream.
	maxIdleConns = 1024
	// maxIdleTime closes connections idle this long, before an upstream
	// with nginx's default keepalive_timeout (60 s, 75 s) would.
	maxIdleTime = 55 * time.Second
	// upstreamReadBufferSize is the read buffer of an exchange; larger
	// response headers are refused, as nginx's proxy_buffer_size does.
	upstreamReadBufferSize = 16 << 10
)

var readerPool sync.Pool

func acquireReader(c net.Conn) *bufio.Reader {
	if v := readerPool.Get(); v != nil {
		br := v.(*bufio.Reader)
		br.Reset(c)
		return br
	}
	return bufio.NewReaderSize(c, upstreamReadBufferSize)
}

func releaseReader(br *bufio.Reader) {
	br.Reset(nil)
	readerPool.Put(br)
}

// do sends head (the request line and headers) and body, and reads the
// answer into resp; isHead says the answer has no body. now is the time
// the exchange starts.
//
// A reused connection the upstream closed before any of the answer
// arrived (it timed out the idle connection as the request reached it)
// is not the upstream failing: the request goes once more on a new
// connection, outside the service's retries, as nginx does for a cached
// keep-alive connection (ngx_http_upstream_next: peer.cached makes the
// failed try not count). A non-idempotent request goes again only when
// none of it reached the socket, as Go's net/http does
// (nothingWrittenError); otherwise the upstream may have run it.
func (c *upstreamClient) do(now time.Time, head []byte, body *requestBody, isHead, stream bool, method []byte, resp *fasthttp.Response) error {
	cc, err := c.acquire(now)
	if err != nil {
		return err
	}
	err = c.roundTrip(cc, now, head, body, isHead, stream, resp)
	if err == nil || !retryOnNewConn(err, method) || !body.replayable() {
		return err
	}
	if cc, err = c.dialConn(); err != nil {
		return err
	}
	return c.roundTrip(cc, time.Now(), head, body, isHead, stream, resp)
}

// roundTrip runs one exchange on cc and then pools or closes cc, unless
// the answer's body streams from cc: then the stream owns it.
func (c *upstreamClient) roundTrip(cc *upstreamConn, now time.Time, head []byte, body *requestBody, isHead, stream bool, resp *fasthttp.Response) error {
	keep, err := c.exchange(cc, now, head, body, isHead, stream, resp)
	if err == errStreaming {
		return nil
	}
	if err != nil || !keep {
		cc.Close()
		return err
	}
	c.release(cc, now)
	return nil
}

// exchange sends the request on cc and reads its answer; keep reports
// whether cc may carry another. errStreaming says the answer's body was
// left on cc to stream (see answerStream).
func (c *upstreamClient) exchange(cc *upstreamConn, now time.Time, head []byte, body *requestBody, isHead, stream bool, resp *fasthttp.Response) (keep bool, err error) {
	sent, received := cc.counts()
	if err := cc.SetWriteDeadline(now.Add(c.key.write)); err != nil {
		return false, err
	}
	if err := cc.SetReadDeadline(now.Add(c.key.read)); err != nil {
		return false, err
	}
	if _, err := cc.Write(head); err != nil {
		return false, cc.beforeAnswer(err, sent, received)
	}
	if err := body.writeTo(cc, c.key.write); err != nil {
		if cbe, ok := err.(*clientBodyError); ok {
			return false, cbe // the client failed, not the upstream
		}
		return false, cc.beforeAnswer(err, sent, received)
	}
	if body.takesTime() {
		// read_timeout counts from the request's end, as nginx's
		// proxy_read_timeout does, however long the body took to send.
		if err := cc.SetReadDeadline(time.Now().Add(c.key.read)); err != nil {
			return false, err
		}
	}
	br := acquireReader(cc)
	if streams, err := readHeader(br, resp, isHead, stream, c.maxBody); streams {
		c.streamBody(cc, br, resp)
		return false, errStreaming
	} else if err != nil {
		releaseReader(br)
		return false, cc.beforeAnswer(err, sent, received)
	}
	reusable, err := readResponse(br, resp, isHead, c.maxBody)
	if over := overflowOf(err); over != nil {
		c.streamRest(cc, br, resp, over)
		return false, errStreaming
	}
	// The answer must end exactly where its framing says: anything more
	// already read is not part of it, and a connection carrying it would
	// hand it to the next request.
	clean := br.Buffered() == 0
	releaseReader(br)
	if err != nil {
		return false, cc.beforeAnswer(err, sent, received)
	}
	return reusable && clean, nil
}

// staleConnError is a reused connection failing before any byte of the
// answer arrived: most likely the upstream closed it while it was idle.
type staleConnError struct {
	err error
	// unsent says none of the request reached the socket, so the
	// upstream cannot have seen it.
	unsent bool
}

// retryOnNewConn reports whether a request that failed with err may go
// again on a new connection (see do).
func retryOnNewConn(err error, method []byte) bool {
	var stale *staleConnError
	return errors.As(err, &stale) && (stale.unsent || isIdempotent(method))
}

func (e *staleConnError) Error() string { return "reused upstream connection closed: " + e.err.Error() }
func (e *staleConnError) Unwrap() error { return e.err }

// counts returns the bytes cc's socket has sent and received so far.
func (cc *upstreamConn) counts() (sent, received uint64) {
	if cc.sock == nil {
		return 0, 0
	}
	return cc.sock.write.total, cc.sock.read.total
}

// beforeAnswer marks err as a staleConnError when cc was reused, failed
// other than by a timeout, and received nothing since the counts sent
// and received were taken.
func (cc *upstreamConn) beforeAnswer(err error, sent, received uint64) error {
	if !cc.reused || cc.sock == nil || isTimeout(err) {
		return err
	}
	nowSent, nowReceived := cc.counts()
	if nowReceived != received {
		return err
	}
	return &staleConnError{err: err, unsent: nowSent == sent}
}

// probeAfter is how long a connection must have been idle to be probed
// before reuse. Under load connections go back out within microseconds,
// and the probe's read system call was a tenth of the proxy's CPU
// (README, Tail latency); an upstream closing a connection, or sending
// bytes unasked, in the very millisecond after its answer is the window
// nginx leaves too (its close handler runs on the next turn of its event
// loop), and a request that finds the connection closed before any answer
// is sent again on a new one when it may be (staleConnError).
const probeAfter = time.Millisecond

// probeIdle reports whether cc is still open with nothing received while
// it sat in the pool. Anything else (the upstream closed it, reset it, or
// sent bytes no request asked for) makes it unusable: the bytes would be
// read as the next request's answer. nginx checks its idle upstream
// connections the same way, closing one on any read event
// (ngx_http_upstream_keepalive_close_handler). One read system call
// that does not wait; through a TLS connection, so that decrypted bytes
// already buffered there count too.
func (cc *upstreamConn) probeIdle(now time.Time) bool {
	if cc.sock == nil || now.Sub(cc.idleSince) < probeAfter {
		return true
	}
	before := cc.sock.read.total
	cc.sock.probing = true
	n, err := cc.Conn.Read(cc.probeBuf[:])
	cc.sock.probing = false
	return n == 0 && err == errWouldBlock && cc.sock.read.total == before
}

// acquire returns the most recently used idle connection that is still
// usable (see checkIdle), or a new one.
func (c *upstreamClient) acquire(now time.Time) (*upstreamConn, error) {
	for {
		cc, vouched := c.popIdle(now)
		if cc == nil {
			return c.dialConn()
		}
		if vouched || c.checkIdle(cc, now) {
			cc.reused = true
			return cc, nil
		}
		cc.Close()
	}
}

// popIdle takes the most recently used idle connection out of the pool,
// closing those idle too long; nil when none is left. vouched says a
// sweep found it clean less than sweepFresh ago, so it needs no check.
func (c *upstreamClient) popIdle(now time.Time) (cc *upstreamConn, vouched bool) {
	c.mu.Lock()
	stale := c.popExpired(now)
	if n := len(c.idle); n > 0 {
		cc = c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
		vouched = cc.cleanPops == cc.pops && !cc.cleanAt.IsZero() && now.Sub(cc.cleanAt) < sweepFresh
		cc.pops++
	}
	c.mu.Unlock()
	closeAll(stale)
	return cc, vouched
}

// checkIdle is probeIdle, done for a plain socket by a sweep that checks
// the pool's other idle connections in the same system call.
func (c *upstreamClient) checkIdle(cc *upstreamConn, now time.Time) bool {
	if cc.sock == nil || now.Sub(cc.idleSince) < probeAfter {
		return true
	}
	if fd, ok := cc.pollable(); ok {
		if clean, ok := c.sweep(cc, fd); ok {
			return clean
		}
	}
	return cc.probeIdle(now)
}

const (
	// sweepMax bounds the connections one sweep checks: the one taken
	// and the most recently used idle ones, which go out next.
	sweepMax = 32
	// sweepFresh is how long a sweep's finding spares the connections
	// it found clean their own check; half of probeAfter, the window a
	// connection reused without a check leaves anyway.
	sweepFresh = probeAfter / 2
)

// pollable returns the descriptor a sweep polls for cc: its socket's,
// when nothing sits between the socket and the exchange that could hold
// bytes of its own (TLS keeps decrypted ones).
func (cc *upstreamConn) pollable() (int32, bool) {
	if cc.sock == nil || cc.sock.fd < 0 {
		return 0, false
	}
	if _, ok := cc.Conn.(*tls.Conn); ok {
		return 0, false
	}
	return cc.sock.fd, true
}

// pollFd is the kernel's struct pollfd.
type pollFd struct {
	fd      int32
	events  int16
	revents int16
}

// pollIn|pollRDHup asks for bytes to read and the peer's end; errors and
// hang-ups are always reported.
const (
	pollIn    = 0x1
	pollRDHup = 0x2000
)

// sweep checks cc, taken from the pool, and up to sweepMax-1 of the idle
// connections most recently used, with one poll system call instead of
// one read each: the probe under load was a read a request. Those found
// with nothing to read, no end and no error are marked clean for
// sweepFresh (see popIdle). clean is cc's finding; ok is false when the
// poll failed and nothing is known.
func (c *upstreamClient) sweep(cc *upstreamConn, fd int32) (clean, ok bool) {
	var fds [sweepMax]pollFd
	var conns [sweepMax]*upstreamConn
	var pops [sweepMax]uint64
	fds[0] = pollFd{fd: fd, events: pollIn | pollRDHup}
	n := 1
	c.mu.Lock()
	at := time.Now() // the poll comes after: anything there by now is seen
	for i := len(c.idle) - 1; i >= 0 && n < sweepMax; i-- {
		v := c.idle[i]
		if vfd, ok := v.pollable(); ok {
			fds[n] = pollFd{fd: vfd, events: pollIn | pollRDHup}
			conns[n], pops[n] = v, v.pops
			n++
		}
	}
	c.mu.Unlock()
	if !pollNow(fds[:n]) {
		return false, false
	}
	if n > 1 {
		c.mu.Lock()
		for i := 1; i < n; i++ {
			// A connection taken meanwhile (and perhaps closed, its
			// descriptor reused) has a new pop count: its finding is void.
			if v := conns[i]; fds[i].revents == 0 && v.pops == pops[i] {
				v.cleanAt, v.cleanPops = at, pops[i]
			}
		}
		c.mu.Unlock()
	}
	return fds[0].revents == 0, true
}

// dialConn opens a new connection.
func (c *upstreamClient) dialConn() (*upstreamConn, error) {
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	return &upstreamConn{Conn: conn, sock: socketOf(conn)}, nil
}

// socketOf finds the socket under the layers tcpDialer puts on an
// upstream connection; nil when there is none.
func socketOf(c net.Conn) *rawIOConn {
	for {
		switch v := c.(type) {
		case *rawIOConn:
			return v
		case *exchangeConn:
			return v.rawIOConn
		case *coarseConn:
			c = v.Conn
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
}

// release keeps cc for reuse and closes connections idle too long.
func (c *upstreamClient) release(cc *upstreamConn, now time.Time) {
	cc.idleSince = now
	c.mu.Lock()
	stale := c.popExpired(now)
	if len(c.idle) < maxIdleConns {
		c.idle = append(c.idle, cc)
	} else {
		stale = append(stale, cc)
	}
	c.mu.Unlock()
	closeAll(stale)
}

// popExpired takes the connections idle for maxIdleTime or longer (the
// oldest, at the front) out of the pool; c.mu must be held.
func (c *upstreamClient) popExpired(now time.Time) []*upstreamConn {
	expired := 0
	for expired < len(c.idle) && now.Sub(c.idle[expired].idleSince) >= maxIdleTime {
		expired++
	}
	if expired == 0 {
		return nil
	}
	stale := append([]*upstreamConn(nil), c.idle[:expired]...)
	n := copy(c.idle, c.idle[expired:])
	clear(c.idle[n:])
	c.idle = c.idle[:n]
	return stale
}

func (c *upstreamClient) closeIdle() {
	c.mu.Lock()
	idle, named := c.idle, c.named
	c.idle = nil
	c.mu.Unlock()
	closeAll(idle)
	for _, v := range named {
		v.closeIdle()
	}
}

func closeAll(conns []*upstreamConn) {
	for _, cc := range conns {
		cc.Close()
	}
}
