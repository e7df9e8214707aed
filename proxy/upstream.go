package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Upstream connections live in a pool owned by the Server, keyed by address
// and connection settings, so keep-alive connections survive snapshot swaps:
// a new snapshot for the same service gets the same upstreamClient.

type clientKey struct {
	addr      string
	host      string // TLS server name
	tls       bool
	tlsVerify bool
	connect   time.Duration
	read      time.Duration
	write     time.Duration
}

func keyFor(svc *service) clientKey {
	return clientKey{
		addr:      svc.addr,
		host:      svc.host,
		tls:       svc.protocol == "https",
		tlsVerify: svc.tlsVerify,
		connect:   svc.connect,
		read:      svc.read,
		write:     svc.write,
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
}

func newClientPool() *clientPool {
	return &clientPool{clients: make(map[clientKey]*upstreamClient), dial: tcpDialer}
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
			c = &upstreamClient{key: k, dial: p.dial(k)}
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

func (p *clientPool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.clients {
		c.closeIdle()
	}
}

// tcpDialer opens upstream connections within connect_timeout (the TLS
// handshake included) and marks its failures as connect errors, which are
// always safe to retry. Connections keep their read and write deadlines
// coarsely (see coarseConn).
func tcpDialer(k clientKey) dialFunc {
	slack := slackFor(min(k.read, k.write))
	d := &net.Dialer{Timeout: k.connect, KeepAlive: 60 * time.Second}
	var tlsConfig *tls.Config
	if k.tls {
		tlsConfig = &tls.Config{ServerName: k.host, InsecureSkipVerify: !k.tlsVerify} //nolint:gosec // Kong's default: tls_verify off
	}
	return func() (net.Conn, error) {
		conn, err := d.Dial("tcp", k.addr)
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

	mu   sync.Mutex      // guards idle
	idle []*upstreamConn // oldest first; reused from the end
}

// upstreamConn is one keep-alive connection to an upstream.
type upstreamConn struct {
	net.Conn
	idleSince time.Time
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
func (c *upstreamClient) do(now time.Time, head, body []byte, isHead bool, resp *fasthttp.Response) error {
	cc, err := c.acquire(now)
	if err != nil {
		return err
	}
	keep, err := c.exchange(cc, now, head, body, isHead, resp)
	if err != nil || !keep {
		cc.Close()
		return err
	}
	c.release(cc, now)
	return nil
}

func (c *upstreamClient) exchange(cc *upstreamConn, now time.Time, head, body []byte, isHead bool, resp *fasthttp.Response) (keep bool, err error) {
	if err := cc.SetWriteDeadline(now.Add(c.key.write)); err != nil {
		return false, err
	}
	if err := cc.SetReadDeadline(now.Add(c.key.read)); err != nil {
		return false, err
	}
	if _, err := cc.Write(head); err != nil {
		return false, err
	}
	if len(body) > 0 {
		if _, err := cc.Write(body); err != nil {
			return false, err
		}
	}
	resp.Reset()
	resp.Header.SetNoDefaultContentType(true)
	resp.SkipBody = isHead
	br := acquireReader(cc)
	err = resp.ReadLimitBody(br, 0)
	// Anything more from the upstream before the next request is a
	// protocol error: such a connection is not reused.
	clean := br.Buffered() == 0
	releaseReader(br)
	if err != nil {
		return false, err
	}
	keep = clean && !resp.ConnectionClose() && resp.Header.ContentLength() != -2
	return keep, nil
}

// acquire returns the most recently used idle connection, or a new one.
func (c *upstreamClient) acquire(now time.Time) (*upstreamConn, error) {
	c.mu.Lock()
	stale := c.popExpired(now)
	var cc *upstreamConn
	if n := len(c.idle); n > 0 {
		cc = c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
	}
	c.mu.Unlock()
	closeAll(stale)
	if cc != nil {
		return cc, nil
	}
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	return &upstreamConn{Conn: conn}, nil
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
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	closeAll(idle)
}

func closeAll(conns []*upstreamConn) {
	for _, cc := range conns {
		cc.Close()
	}
}
