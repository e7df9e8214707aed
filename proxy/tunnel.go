package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// A tunnel joins a client's connection, hijacked after a WebSocket
// request, to the upstream connection that answered it 101 Switching
// Protocols, and copies bytes both ways until either side closes, as
// nginx's upgraded mode does (ngx_http_upstream_process_upgraded). Its
// timeouts are nginx's there, with the service's values as Kong sets them
// (kong/runloop/handler.lua: send_timeout = write_timeout, read_timeout =
// read_timeout):
//   - the upstream's read timer, re-armed whenever bytes move either way,
//     closes a tunnel idle for read_timeout;
//   - a write to the upstream must progress within write_timeout;
//   - a write to the client within nginx_proxy_send_timeout (the client
//     connection's own, see coarseConn.Write).
//
// The client's connection stays counted open (connections_active) until
// the tunnel closes it, and fasthttp reports it hijacked, never idle, so
// clientConns.makeRoom does not take it for an idle one. The tunnel uses
// the client connection as a net.Conn only, so a TLS listener's
// connections tunnel the same way.
//
// Goroutines: fasthttp's hijack goroutine runs the client-to-upstream copy
// and waits for the upstream-to-client one it starts; either ending closes
// both connections, which ends the other. Server.Shutdown closes every
// tunnel and waits for them.
type tunnel struct {
	upstream *upstreamConn
	// pending reads the upstream: it holds what the upstream sent after
	// the 101's header. Released once that is sent on.
	pending *bufio.Reader
	idle    time.Duration // the service's read_timeout
	write   time.Duration // the service's write_timeout
	log     zerolog.Logger

	last atomic.Int64 // unix nanoseconds when bytes last moved either way

	closeOnce sync.Once
	mu        sync.Mutex // guards client
	client    net.Conn   // the hijacked connection, nil until the tunnel runs
}

// tunnelBufferSize is what one direction of a tunnel reads at once.
const tunnelBufferSize = 32 << 10

// runTunnel is the hijack handler of an upgraded request: it writes the
// 101 answer and whatever the upstream sent after it, then tunnels.
func (s *Server) runTunnel(ctx *fasthttp.RequestCtx, t *tunnel, c net.Conn) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error().Interface("panic", v).Bytes("stack", debug.Stack()).Msg("proxy tunnel panicked")
			t.close()
		}
	}()
	if !s.tunnels.start(t, c) {
		t.close()
		return
	}
	defer s.tunnels.done(t)
	// fasthttp may have marked the answer for closing or keep-alive
	// (an HTTP/1.0 request, a shutdown) before handing the connection
	// over; a 101 answer's connection is upgraded (nginx's header filter
	// says so for every 101).
	h := &ctx.Response.Header
	h.ResetConnectionClose()
	h.Set("Connection", "upgrade")
	head := h.AppendBytes(nil)
	t.serve(c, head)
}

// serve sends head and the upstream's early bytes to the client, then
// copies both ways until either side ends, and closes both.
func (t *tunnel) serve(client net.Conn, head []byte) {
	defer t.close()
	if n := t.pending.Buffered(); n > 0 {
		early, _ := t.pending.Peek(n)
		head = append(head, early...)
	}
	releaseReader(t.pending)
	t.pending = nil
	t.touch()
	if _, err := client.Write(head); err != nil {
		t.log.Debug().Err(err).Msg("proxy tunnel: client gone before the upgrade answer")
		return
	}
	opened := time.Now()
	fromUpstream := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				t.log.Error().Interface("panic", v).Bytes("stack", debug.Stack()).Msg("proxy tunnel panicked")
				fromUpstream <- errTunnelPanic
			}
		}()
		err := t.pipe(client, t.upstream, nil)
		t.close() // ends the other direction
		fromUpstream <- err
	}()
	errClient := t.pipe(t.upstream, client, t.upstream)
	t.close()
	errUpstream := <-fromUpstream
	if e := t.log.Debug(); e.Enabled() {
		e.Dur("open_for", time.Since(opened)).AnErr("client", errClient).AnErr("upstream", errUpstream).
			Msg("proxy tunnel closed")
	}
}

var errTunnelPanic = errors.New("tunnel copy panicked")

// errTunnelIdle ends a tunnel no bytes crossed for the service's
// read_timeout.
var errTunnelIdle = errors.New("tunnel idle for the service's read_timeout")

// pipe copies src to dst until src ends or fails (nil for a clean end of
// src). Reads wait until read_timeout after bytes last moved either way;
// writes to upstream, when given, must progress within write_timeout.
func (t *tunnel) pipe(dst, src net.Conn, upstream net.Conn) error {
	buf := make([]byte, tunnelBufferSize)
	for {
		if err := src.SetReadDeadline(time.Unix(0, t.last.Load()).Add(t.idle)); err != nil {
			return err
		}
		n, err := src.Read(buf)
		if n > 0 {
			t.touch()
			if upstream != nil {
				if werr := upstream.SetWriteDeadline(time.Now().Add(t.write)); werr != nil {
					return werr
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return nil
		case isTimeout(err):
			if time.Since(time.Unix(0, t.last.Load())) < t.idle {
				continue // the other direction moved bytes meanwhile
			}
			return errTunnelIdle
		default:
			return err
		}
	}
}

func (t *tunnel) touch() { t.last.Store(time.Now().UnixNano()) }

// close closes both connections, once; safe from any goroutine. Closing
// the client's connection ends its count in connections_active.
func (t *tunnel) close() {
	t.closeOnce.Do(func() {
		t.upstream.Close()
		t.mu.Lock()
		c := t.client
		t.mu.Unlock()
		if c == nil {
			return
		}
		// fasthttp's hijacked connection does not close; the connection
		// under it does (fasthttp closes it again when the handler
		// returns, which is harmless).
		if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
			c = u.UnsafeConn()
		}
		c.Close()
	})
}

// tunnelSet is a Server's open tunnels, so that Shutdown can end them:
// fasthttp's own shutdown no longer sees a hijacked connection.
type tunnelSet struct {
	mu      sync.Mutex // guards the fields below
	open    map[*tunnel]struct{}
	stopped bool
	running sync.WaitGroup // tunnels whose hijack handler has started
}

// add registers a tunnel about to be handed its client connection; false
// once the server is shutting down.
func (ts *tunnelSet) add(t *tunnel) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.stopped {
		return false
	}
	if ts.open == nil {
		ts.open = make(map[*tunnel]struct{})
	}
	ts.open[t] = struct{}{}
	return true
}

// start gives t its client connection as its hijack handler begins; false
// when the server shut down meanwhile (t was closed then).
func (ts *tunnelSet) start(t *tunnel, c net.Conn) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.stopped {
		return false
	}
	t.mu.Lock()
	t.client = c
	t.mu.Unlock()
	ts.running.Add(1)
	return true
}

// done unregisters a tunnel whose handler is returning.
func (ts *tunnelSet) done(t *tunnel) {
	ts.mu.Lock()
	delete(ts.open, t)
	ts.mu.Unlock()
	ts.running.Done()
}

// closeAll closes every tunnel, refuses new ones and waits, until ctx
// ends, for their handlers to return.
func (ts *tunnelSet) closeAll(ctx context.Context) error {
	ts.mu.Lock()
	ts.stopped = true
	open := make([]*tunnel, 0, len(ts.open))
	for t := range ts.open {
		open = append(open, t)
	}
	ts.mu.Unlock()
	for _, t := range open {
		t.close()
	}
	finished := make(chan struct{})
	go func() {
		ts.running.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// openTunnels counts the tunnels open now.
func (ts *tunnelSet) openTunnels() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.open)
}
