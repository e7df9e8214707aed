package proxy

import (
	"net"
	"sync/atomic"
	"time"
)

// fasthttp moves a connection's deadlines on every request: the upstream
// read and write timeouts before each exchange, the client's idle timeout
// before each wait and its removal once a request arrives. Each move is a
// runtime timer update. coarseConn keeps an armed deadline when it is no
// earlier than asked and at most slack later, so a busy keep-alive
// connection re-arms its timers about once per slack instead of per
// request. A timeout fires between 0 and slack late, never early.
//
// Deadlines must be set from the goroutine that reads and writes the
// connection, which is how fasthttp uses them.
type coarseConn struct {
	net.Conn
	slack     time.Duration
	readAt    time.Time // read deadline armed on Conn, zero when none
	writeAt   time.Time // write deadline armed on Conn, zero when none
	readUnset bool      // no read deadline wanted; readAt is cleared before the next Read

	// A client connection (owner set) also has these.
	sendTimeout time.Duration // when set, every write must progress within it
	owner       *clientConns  // counts the connection open until Close
	closed      atomic.Bool
	idleSince   atomic.Int64 // unix nanoseconds since waiting for a request, 0 while serving one
}

// maxDeadlineSlack bounds the lateness of a timeout; a sixteenth of the
// timeout is used when that is smaller.
const maxDeadlineSlack = time.Second

func slackFor(timeout time.Duration) time.Duration {
	return min(timeout/16, maxDeadlineSlack)
}

func newCoarseConn(c net.Conn, slack time.Duration) net.Conn {
	if slack <= 0 {
		return c
	}
	return &coarseConn{Conn: c, slack: slack}
}

// rearm reports whether the armed deadline must move for a request of t,
// and to when.
func (c *coarseConn) rearm(armed, t time.Time) (time.Time, bool) {
	if t.IsZero() {
		return t, !armed.IsZero()
	}
	if !armed.IsZero() && !armed.Before(t) && armed.Sub(t) <= c.slack {
		return armed, false
	}
	return t.Add(c.slack), true
}

func (c *coarseConn) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		// Cleared lazily: a request that arrived whole is served without
		// touching the timer, and the next idle wait re-uses it.
		c.readUnset = true
		return nil
	}
	c.readUnset = false
	at, move := c.rearm(c.readAt, t)
	if !move {
		return nil
	}
	c.readAt = at
	return c.Conn.SetReadDeadline(at)
}

func (c *coarseConn) SetWriteDeadline(t time.Time) error {
	at, move := c.rearm(c.writeAt, t)
	if !move {
		return nil
	}
	c.writeAt = at
	return c.Conn.SetWriteDeadline(at)
}

func (c *coarseConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// sendChunk is the most written under one send deadline, so a large
// response to a slow client moves the deadline as long as it progresses.
const sendChunk = 256 << 10

// Write applies sendTimeout between writes as nginx's send_timeout does: a
// client that stops reading is dropped, a slow one that keeps reading is
// not.
func (c *coarseConn) Write(p []byte) (int, error) {
	if c.sendTimeout <= 0 {
		return c.Conn.Write(p)
	}
	written := 0
	for written < len(p) {
		end := min(len(p), written+sendChunk)
		if err := c.SetWriteDeadline(time.Now().Add(c.sendTimeout)); err != nil {
			return written, err
		}
		n, err := c.Conn.Write(p[written:end])
		written += n
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// Close closes the connection and, the first time, tells its owner.
func (c *coarseConn) Close() error {
	if c.owner != nil && c.closed.CompareAndSwap(false, true) {
		c.owner.forget(c)
	}
	return c.Conn.Close()
}

func (c *coarseConn) Read(p []byte) (int, error) {
	if c.readUnset && !c.readAt.IsZero() {
		if err := c.Conn.SetReadDeadline(time.Time{}); err != nil {
			return 0, err
		}
		c.readAt = time.Time{}
	}
	return c.Conn.Read(p)
}

// wrapUpstreamConn is how the proxy holds every upstream TCP connection:
// as a client connection that also sends each request with the read of
// its response (see exchangeConn).
func wrapUpstreamConn(c net.Conn, slack time.Duration) net.Conn {
	if _, ok := c.(*net.TCPConn); !ok {
		return c
	}
	return newCoarseConn(newExchangeConn(c), slack)
}
