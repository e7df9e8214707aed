// Package grpcup is the proxy's HTTP/2 client for grpc and grpcs
// services: cleartext HTTP/2 with prior knowledge (h2c) for grpc, HTTP/2
// over TLS for grpcs. Connections are pooled per upstream address and per
// connection settings (TLS configuration, server name, connect and write
// timeouts). A snapshot swap keeps the pools of the services it keeps and
// drops the others (Prune); a connection idle for IdleTimeout is closed,
// so connections to addresses no longer used do not stay open. It must
// not know about routes, plugins or Kong's headers: the
// proxy builds the request and reads the answer.
package grpcup

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// Settings are a service's connection settings, as nginx applies them to
// grpc_pass through Kong's balancer (set_timeouts).
type Settings struct {
	// TLS is the upstream TLS configuration of a grpcs service; nil: h2c.
	TLS *tls.Config
	// ServerName is the SNI sent over TLS (nginx's grpc_ssl_name,
	// $upstream_host); empty: the dialled host.
	ServerName string
	// Connect bounds opening a connection, TLS handshake included
	// (connect_timeout); 0: DefaultTimeout.
	Connect time.Duration
	// Write bounds each write to the connection (write_timeout); 0: none.
	Write time.Duration
}

// DefaultTimeout is Kong's default for a service's timeouts.
const DefaultTimeout = 60 * time.Second

// ConnectError is a failure to open a connection to the upstream: nothing
// of the request was sent, so another address may be tried.
type ConnectError struct{ Err error }

func (e *ConnectError) Error() string { return "connect upstream: " + e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// IdleTimeout closes an upstream connection no request used for that
// long, as Kong's upstream_keepalive_idle_timeout (60 s) does; Prune
// drops a pool unused for that long.
const IdleTimeout = 60 * time.Second

// Client sends requests to gRPC upstreams. Safe for concurrent use.
type Client struct {
	mu sync.Mutex         // guards ts
	ts map[Settings]*pool // one pool per connection settings
}

// pool is the connections of one connection settings, per address.
type pool struct {
	t    *http2.Transport
	used atomic.Int64 // unix nanoseconds of the last request
}

// New returns a client with no connection open.
func New() *Client {
	return &Client{ts: map[Settings]*pool{}}
}

// RoundTrip sends req with the connection settings s: over TLS when
// s.TLS is set (grpcs), else as h2c. The request's URL scheme must be
// http or https to match. A connection that could not be opened is a
// *ConnectError.
func (c *Client) RoundTrip(req *http.Request, s Settings) (*http.Response, error) {
	p := c.pool(s)
	p.used.Store(time.Now().UnixNano())
	return p.t.RoundTrip(req)
}

func (c *Client) pool(s Settings) *pool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.ts[s]
	if !ok {
		p = &pool{t: &http2.Transport{AllowHTTP: s.TLS == nil, TLSClientConfig: s.TLS, DialTLSContext: dialer(s),
			IdleConnTimeout: IdleTimeout}}
		c.ts[s] = p
	}
	return p
}

// Prune drops the pools whose settings keep rejects (services a snapshot
// swap removed or changed) and those no request used since unusedSince,
// closing their idle connections; a connection still carrying a call
// ends with it, closed once idle (IdleTimeout). A later request with
// dropped settings opens a new pool. It returns how many pools it
// dropped.
func (c *Client) Prune(keep func(Settings) bool, unusedSince time.Time) int {
	c.mu.Lock()
	var gone []*pool
	for s, p := range c.ts {
		if !keep(s) || p.used.Load() < unusedSince.UnixNano() {
			gone = append(gone, p)
			delete(c.ts, s)
		}
	}
	c.mu.Unlock()
	for _, p := range gone {
		p.t.CloseIdleConnections()
	}
	return len(gone)
}

// Pools is how many pools the client holds.
func (c *Client) Pools() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ts)
}

// dialer opens the connections of one settings' pool: TCP (and the TLS
// handshake for grpcs) within the connect timeout.
func dialer(s Settings) func(ctx context.Context, network, addr string, conf *tls.Config) (net.Conn, error) {
	connect := s.Connect
	if connect <= 0 {
		connect = DefaultTimeout
	}
	return func(ctx context.Context, network, addr string, conf *tls.Config) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, connect)
		defer cancel()
		d := net.Dialer{}
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, &ConnectError{Err: err}
		}
		var conn net.Conn = raw
		if s.Write > 0 {
			conn = &writeDeadlineConn{Conn: raw, timeout: s.Write}
		}
		if s.TLS == nil {
			return conn, nil // h2c: no TLS despite the name
		}
		conf = conf.Clone() // the transport's: s.TLS with h2 as ALPN
		if s.ServerName != "" {
			conf.ServerName = s.ServerName
		}
		tc := tls.Client(conn, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, &ConnectError{Err: fmt.Errorf("tls handshake: %w", err)}
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != http2.NextProtoTLS {
			tc.Close()
			return nil, &ConnectError{Err: fmt.Errorf("upstream offered ALPN %q, not h2", p)}
		}
		return tc, nil
	}
}

// writeDeadlineConn bounds each write by the write timeout, as nginx's
// send timeout bounds the time between two successive writes.
type writeDeadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *writeDeadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// CloseIdle closes the connections no request uses.
func (c *Client) CloseIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.ts {
		p.t.CloseIdleConnections()
	}
}

// ErrReadTimeout ends a request whose upstream sent nothing for the read
// timeout (nginx's grpc_read_timeout: between two successive reads).
var ErrReadTimeout = errors.New("upstream read timed out")

// Watch is one request's read timeout: it cancels the request's context
// with ErrReadTimeout when nothing came from the upstream, and no request
// body went to it, for the timeout. Progress (Touch) restarts it.
type Watch struct {
	timer   *time.Timer
	timeout time.Duration
	cancel  context.CancelCauseFunc
}

// NewWatch returns parent's child context, cancelled after timeout
// without progress, and its watch; Stop it when the request is done.
func NewWatch(parent context.Context, timeout time.Duration) (context.Context, *Watch) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithCancelCause(parent)
	w := &Watch{timeout: timeout, cancel: cancel}
	w.timer = time.AfterFunc(timeout, func() { cancel(ErrReadTimeout) })
	return ctx, w
}

// Touch records progress.
func (w *Watch) Touch() { w.timer.Reset(w.timeout) }

// Stop ends the watch and the request's context.
func (w *Watch) Stop() {
	w.timer.Stop()
	w.cancel(context.Canceled)
}

// TimedOut reports whether err ended a request of ctx whose read timeout
// fired.
func TimedOut(ctx context.Context, err error) bool {
	return err != nil && errors.Is(context.Cause(ctx), ErrReadTimeout)
}

// Body is an upstream answer's body as the proxy's response body stream:
// each read is progress for the request's watch, and its trailers
// (grpc-status, grpc-message) are read after its last byte and follow it
// to the client (h2bridge.Trailers). Closing it ends the request.
type Body struct {
	Resp  *http.Response
	Watch *Watch
}

func (b Body) Read(p []byte) (int, error) {
	n, err := b.Resp.Body.Read(p)
	if n > 0 {
		b.Watch.Touch()
	}
	return n, err
}

func (b Body) Close() error {
	err := b.Resp.Body.Close()
	b.Watch.Stop()
	return err
}

// Trailers are the answer's trailers, complete once the body is read.
func (b Body) Trailers() http.Header { return b.Resp.Trailer }

// RequestBody is a client's request body on its way upstream: each read
// is progress for the request's watch (a client stream the upstream
// answers only at its end is not cut by the read timeout while it
// flows). Closing it does not close the client's body: a request whose
// connection failed may be sent again.
type RequestBody struct {
	R     io.Reader
	Watch *Watch
}

func (b RequestBody) Read(p []byte) (int, error) {
	n, err := b.R.Read(p)
	if n > 0 {
		b.Watch.Touch()
	}
	return n, err
}

func (RequestBody) Close() error { return nil }
