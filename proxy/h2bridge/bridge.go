// Package h2bridge serves HTTP/2 connections with the proxy's fasthttp
// request handler, so HTTP/1.1 and HTTP/2 share one request path: one
// router, one plugin chain, one upstream client, the same Kong headers.
//
// Each HTTP/2 stream (golang.org/x/net/http2 does the framing) becomes a
// fasthttp.RequestCtx: method, :path, :authority, headers and the body as
// a stream; the handler runs as it does for HTTP/1.1; its answer (status,
// headers, body or body stream, and trailers when the body stream has
// them, see Trailers) is written back on the stream. The RequestCtx's
// connection is a stand-in for the stream: it reports the client
// connection's addresses and TLS state, and its deadlines are the
// stream's, so the handler's body timeouts hold per stream.
//
// The package owns only this translation; it must not know about routes,
// plugins or upstreams.
package h2bridge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
)

// Options are the HTTP/2 server's limits.
type Options struct {
	// IdleTimeout closes a connection with no open stream (nginx's
	// keepalive_timeout); 0: never.
	IdleTimeout time.Duration
	// MaxHeaderBytes limits a request's decoded header block; 0: 1 MiB.
	MaxHeaderBytes int
	// MaxConcurrentStreams per connection; 0: 128, nginx's
	// http2_max_concurrent_streams.
	MaxConcurrentStreams uint32
	// ServerName is the Server header of answers that carry none.
	ServerName string
	// ErrorLog receives the HTTP/2 server's own messages; nil: discarded.
	ErrorLog *log.Logger
	// Logger is the RequestCtx's logger; nil: fasthttp's default.
	Logger fasthttp.Logger
	// HoldHeaders is the longest an answer's headers wait for its body to
	// go out in the same write (see headConn); 0: 1 ms, negative: never.
	HoldHeaders time.Duration
}

// Server serves HTTP/2 connections with one fasthttp handler: New →
// ServeConn (per connection, from any goroutine) → Shutdown.
type Server struct {
	handler fasthttp.RequestHandler
	opts    Options
	h2      *http2.Server
	base    *http.Server // carries the graceful shutdown to every connection
	pool    sync.Pool    // *exchange
}

// New returns a server passing every stream to handler.
func New(handler fasthttp.RequestHandler, opts Options) *Server {
	if opts.MaxConcurrentStreams == 0 {
		opts.MaxConcurrentStreams = 128
	}
	if opts.MaxHeaderBytes == 0 {
		opts.MaxHeaderBytes = 1 << 20
	}
	if opts.HoldHeaders == 0 {
		opts.HoldHeaders = time.Millisecond
	}
	if opts.ErrorLog == nil {
		opts.ErrorLog = log.New(io.Discard, "", 0)
	}
	s := &Server{handler: handler, opts: opts}
	// Answers' header fields are never added to the HPACK dynamic table
	// (a limit of 1 byte holds no field): most of the proxy's are new
	// each time (X-Kong-Request-Id, the latencies, Date), so indexing
	// them only costs inserts and evictions. nginx's HTTP/2 encoder
	// keeps no table of its own either.
	s.h2 = &http2.Server{IdleTimeout: opts.IdleTimeout, MaxConcurrentStreams: opts.MaxConcurrentStreams,
		MaxEncoderHeaderTableSize: 1}
	s.base = &http.Server{MaxHeaderBytes: opts.MaxHeaderBytes, ErrorLog: opts.ErrorLog}
	// ConfigureServer ties the h2 server's connections to base.Shutdown;
	// its only error is for a TLS configuration base does not have.
	_ = http2.ConfigureServer(s.base, s.h2)
	// The head is parsed from text so fasthttp keeps the raw header lines
	// the handler reads (AllInOrder); the reader holds the largest head.
	brSize := opts.MaxHeaderBytes + 8<<10
	s.pool.New = func() any {
		x := &exchange{}
		x.br = bufio.NewReaderSize(&x.rd, brSize)
		return x
	}
	return s
}

// ServeConn serves one connection until it ends: c is a *tls.Conn that
// negotiated h2, or a plain connection whose client sent the HTTP/2
// preface (h2c with prior knowledge) with the preface still unread.
func (s *Server) ServeConn(c net.Conn) error {
	wrapped, head := newHeadConn(c, max(s.opts.HoldHeaders, 0))
	ctx := context.WithValue(context.Background(), connKey{}, &clientConn{conn: c, head: head})
	s.h2.ServeConn(wrapped, &http2.ServeConnOpts{Context: ctx, BaseConfig: s.base, Handler: s})
	return nil
}

// clientConn is a connection's context value for its streams.
type clientConn struct {
	conn net.Conn // the client's connection, as ServeConn got it
	head *headConn
}

// Shutdown asks every connection to finish: each gets a GOAWAY, ends its
// open streams, then closes. It does not wait for them.
func (s *Server) Shutdown() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // base has no listener or connection of its own to wait for
	_ = s.base.Shutdown(ctx)
}

type connKey struct{}

// IsHTTP2 reports whether ctx is an HTTP/2 stream served by a Server.
func IsHTTP2(ctx *fasthttp.RequestCtx) bool {
	_, ok := ctx.Conn().(interface{ http2Stream() })
	return ok
}

// Context is the stream of ctx's context: done when the client resets
// the stream or the connection ends, so work for it upstream can stop.
// Background for a request no Server serves.
func Context(ctx *fasthttp.RequestCtx) context.Context {
	if sc, ok := ctx.Conn().(interface{ streamContext() context.Context }); ok {
		return sc.streamContext()
	}
	return context.Background()
}

// Trailers is implemented by a response body stream that ends with
// trailers (an upstream's gRPC answer): they are sent after its last
// byte.
type Trailers interface {
	Trailers() http.Header
}

// exchange is one stream's pooled state.
type exchange struct {
	ctx  fasthttp.RequestCtx
	conn streamConn
	tls  tlsStreamConn
	raw  []byte        // the request's head as HTTP/1.1 text
	hdr  []byte        // the answer's header keys and values (copyResponseHeader)
	keys []string      // the request's header names, sorted (copyRequest)
	rd   bytes.Reader  // reads raw
	br   *bufio.Reader // reads rd for fasthttp's parser
}

// ServeHTTP runs the handler for one stream.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = growStack(0, 1)
	x := s.pool.Get().(*exchange)
	defer s.release(x)
	cc, _ := r.Context().Value(connKey{}).(*clientConn)
	client := cc.conn
	x.conn = streamConn{Conn: client, rc: http.NewResponseController(w), ctx: r.Context()}
	var conn net.Conn = &x.conn
	if tc, ok := client.(*tls.Conn); ok {
		x.tls = tlsStreamConn{streamConn: &x.conn, tc: tc}
		conn = &x.tls
	}
	ctx := &x.ctx
	ctx.Init2(conn, s.opts.Logger, false)
	if err := x.copyRequest(&ctx.Request, r); err != nil {
		s.opts.ErrorLog.Printf("h2bridge: request head: %v", err)
		http.Error(w, "", http.StatusBadRequest)
		return
	}
	s.handler(ctx)
	s.writeResponse(w, x, cc.head, &ctx.Response, r.Method == http.MethodHead)
}

func (s *Server) release(x *exchange) {
	x.ctx.Request.Reset()
	x.ctx.Response.Reset()
	x.conn, x.tls = streamConn{}, tlsStreamConn{}
	clear(x.keys) // the request's strings are not kept alive in the pool
	if cap(x.hdr) > 64<<10 {
		x.hdr = nil
	}
	s.pool.Put(x)
}

// copyRequest fills req from an HTTP/2 request. The header fields come
// in name order: HTTP/2's order is lost by net/http's map. The values
// were checked by the HTTP/2 server (no CR, LF or NUL).
func (x *exchange) copyRequest(req *fasthttp.Request, r *http.Request) error {
	b := append(x.raw[:0], r.Method...)
	b = append(append(append(b, ' '), r.RequestURI...), " HTTP/1.1\r\nHost: "...)
	b = append(append(b, r.Host...), "\r\n"...)
	names := x.keys[:0]
	for name := range r.Header {
		if name != "Host" && name != "Content-Length" && name != "Transfer-Encoding" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	x.keys = names
	for _, name := range names {
		for _, v := range r.Header[name] {
			b = append(append(append(append(b, name...), ": "...), v...), "\r\n"...)
		}
	}
	x.raw = append(b, "\r\n"...)
	x.rd.Reset(x.raw)
	x.br.Reset(&x.rd)
	h := &req.Header
	if err := h.Read(x.br); err != nil {
		return err
	}
	h.SetProtocol("HTTP/2.0")
	switch {
	case r.ContentLength > 0 || r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody:
		req.SetBodyStream(r.Body, int(r.ContentLength))
	case r.ContentLength < 0:
		h.SetContentLength(0)
	}
	return nil
}

// writeResponse sends the handler's answer on the stream.
func (s *Server) writeResponse(w http.ResponseWriter, x *exchange, hc *headConn, resp *fasthttp.Response, head bool) {
	resp.Header.SetNoDefaultContentType(true)
	x.copyResponseHeader(w.Header(), &resp.Header, s.opts.ServerName)
	stream := resp.BodyStream()
	w.WriteHeader(resp.StatusCode())
	if head {
		return
	}
	if stream == nil {
		if body := resp.Body(); len(body) > 0 {
			hc.expectBody()
			_, _ = w.Write(body)
		}
		return
	}
	tr, hasTrailers := stream.(Trailers)
	if !hasTrailers {
		// The headers go at once, as nginx sends an upstream's headers
		// on receipt: a client of a stream whose first piece comes late
		// (server-sent events) sees the answer begin. x/net/http2 would
		// hold them until the first piece. A gRPC answer keeps that hold:
		// with no message at all it must go as one trailers-only HEADERS
		// frame, which an early flush would split.
		_ = x.conn.rc.Flush()
	}
	// Each piece is flushed as it comes: a streamed answer (gRPC above
	// all) must not wait in a buffer for the next one.
	_ = resp.BodyWriteTo(flushWriter{w: w, rc: x.conn.rc})
	if hasTrailers {
		// Keys with TrailerPrefix set after the body go as trailers.
		out := w.Header()
		for k, vs := range tr.Trailers() {
			out[http.TrailerPrefix+k] = vs
		}
	}
}

// copyResponseHeader adds h's fields to out, less the connection-specific
// ones HTTP/2 forbids (RFC 9113 §8.2.2), and Server: server when h has
// none. Every key and value is cut from one string and every value slice
// from one array, two allocations in all instead of two per field.
func (x *exchange) copyResponseHeader(out http.Header, h *fasthttp.ResponseHeader, server string) {
	b, n, hasServer := x.hdr[:0], 0, false
	for k, v := range h.All() {
		if connectionSpecific(k) {
			continue
		}
		hasServer = hasServer || string(k) == "Server"
		b = append(append(b, k...), v...)
		n++
	}
	x.hdr = b
	if n == 0 {
		if server != "" {
			out["Server"] = []string{server}
		}
		return
	}
	text, values, off := string(b), make([]string, n), 0
	i := 0
	for k, v := range h.All() {
		if connectionSpecific(k) {
			continue
		}
		key := http.CanonicalHeaderKey(text[off : off+len(k)]) // fasthttp's keys already are: no copy
		off += len(k)
		values[i] = text[off : off+len(v)]
		off += len(v)
		if prev, ok := out[key]; ok {
			out[key] = append(prev, values[i])
		} else {
			out[key] = values[i : i+1 : i+1]
		}
		i++
	}
	if !hasServer && server != "" {
		out["Server"] = []string{server}
	}
}

// connectionSpecific reports whether an answer's field k must not go on
// an HTTP/2 stream (RFC 9113 §8.2.2).
func connectionSpecific(k []byte) bool {
	switch string(k) {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer":
		return true
	}
	return false
}

type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}

var errStream = errors.New("h2bridge: an HTTP/2 stream is not read or written as a connection")

// streamConn stands for one stream where the handler expects a
// connection: the client connection's addresses, the stream's deadlines.
type streamConn struct {
	net.Conn // the client connection; never read, written or closed here
	rc       *http.ResponseController
	ctx      context.Context // the stream's
}

func (c *streamConn) http2Stream()                       {}
func (c *streamConn) streamContext() context.Context     { return c.ctx }
func (c *streamConn) Read([]byte) (int, error)           { return 0, errStream }
func (c *streamConn) Write([]byte) (int, error)          { return 0, errStream }
func (c *streamConn) Close() error                       { return nil }
func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.rc.SetReadDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.rc.SetWriteDeadline(t) }
func (c *streamConn) SetDeadline(t time.Time) error {
	return errors.Join(c.rc.SetReadDeadline(t), c.rc.SetWriteDeadline(t))
}

// tlsStreamConn is a stream of a TLS connection: fasthttp's IsTLS and
// the proxy's server name lookup see the connection's state.
type tlsStreamConn struct {
	*streamConn
	tc *tls.Conn
}

func (c *tlsStreamConn) Handshake() error                     { return nil }
func (c *tlsStreamConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// handlerStack is about the stack the handler grows to on an ordinary
// request (routing, plugins, the upstream round trip).
const handlerStack = 8 << 10

// growStack makes the calling goroutine's stack big enough for the
// handler at once. x/net/http2 runs each stream's handler on a new
// goroutine whose small stack would otherwise double during the
// request, each time copying every frame above it (runtime.morestack →
// copystack); grown here, the copy happens once, with only the two
// frames of runHandler and ServeHTTP to move.
//
// It returns a byte of its frame so that the frame is not optimised
// away (being noinline, it cannot know that the caller drops it).
//
//go:noinline
func growStack(i, j int) byte {
	var frame [handlerStack]byte
	frame[i] = 1
	return frame[j]
}
