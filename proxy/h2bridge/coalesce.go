package h2bridge

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// x/net/http2 writes an answer's HEADERS frame and waits until it is
// written before it takes the body's DATA frame; its connection loop,
// finding nothing else queued in between, flushes the HEADERS alone. An
// answer with a body thus costs two writes to the client (two TLS
// records, two system calls) where nginx makes one.
//
// headConn sits between the HTTP/2 server and the client connection and
// holds back a flush that ends with an open HEADERS frame (no
// END_STREAM) while a stream has announced a body in hand (expectBody,
// from ServeHTTP just before it returns): the body's DATA frame follows
// within microseconds and both go out in one write. So that nothing
// waits long on a hold (an announcement used by another stream's headers,
// a DATA frame stopped by flow control), a held flush goes out alone
// after holdFor at the latest.
type headConn struct {
	net.Conn
	holdFor   time.Duration
	pending   atomic.Int32 // bodies announced and not yet used by a hold
	announced atomic.Int64 // unix nanoseconds of the last announcement
	closed    atomic.Bool

	mu     sync.Mutex // guards the fields below and every write to Conn
	held   []byte     // flushed bytes not yet written
	frame  int        // bytes of the current frame still to come in later writes
	header []byte     // a frame header split across writes, so far
	timer  *time.Timer
	err    error // a failed write of held bytes, returned by the next Write
}

// tlsHeadConn is a headConn over a TLS connection: the HTTP/2 server
// checks its TLS state through ConnectionState.
type tlsHeadConn struct {
	*headConn
	tc *tls.Conn
}

func (c tlsHeadConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// newHeadConn wraps c; holdFor 0 turns holding off.
func newHeadConn(c net.Conn, holdFor time.Duration) (net.Conn, *headConn) {
	hc := &headConn{Conn: c, holdFor: holdFor}
	if tc, ok := c.(*tls.Conn); ok {
		return tlsHeadConn{headConn: hc, tc: tc}, hc
	}
	return hc, hc
}

// expectBody announces that a stream's answer has a body in hand, to be
// written right after its headers.
func (c *headConn) expectBody() {
	if c.holdFor > 0 {
		c.pending.Add(1)
		c.announced.Store(time.Now().UnixNano())
	}
}

// holding reports whether a flush ending with open headers is to be
// held, and uses an announcement if so. Announcements older than holdFor
// are forgotten: their headers went out with their body in one flush.
func (c *headConn) holding() bool {
	if c.pending.Load() <= 0 {
		return false
	}
	if time.Now().UnixNano()-c.announced.Load() > int64(c.holdFor) {
		c.pending.Store(0)
		return false
	}
	c.pending.Add(-1)
	return true
}

const (
	frameHeaderLen  = 9
	frameHeaders    = 0x1
	flagEndStream   = 0x1
	flagEndHeaders  = 0x4
	maxHeldBytes    = 16 << 10
	frameTypeOffset = 3
)

func (c *headConn) Write(p []byte) (int, error) {
	if c.holdFor == 0 {
		return c.Conn.Write(p) // nothing is ever held: no frames to follow
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	openHeaders := c.scan(p)
	if openHeaders && len(c.held)+len(p) <= maxHeldBytes && !c.closed.Load() && c.holding() {
		c.held = append(c.held, p...)
		c.hold()
		return len(p), nil
	}
	if len(c.held) == 0 {
		return c.Conn.Write(p)
	}
	c.held = append(c.held, p...)
	_, err := c.writeHeld()
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// scan follows the frames through p and reports whether p ends at the
// end of a HEADERS frame that ends its header block but not its stream.
func (c *headConn) scan(p []byte) bool {
	last := byte(0)
	lastFlags := byte(0)
	ended := false
	for len(p) > 0 {
		if c.frame > 0 {
			n := min(c.frame, len(p))
			c.frame -= n
			p = p[n:]
			ended = c.frame == 0
			continue
		}
		n := min(frameHeaderLen-len(c.header), len(p))
		c.header = append(c.header, p[:n]...)
		p = p[n:]
		if len(c.header) < frameHeaderLen {
			return false
		}
		h := c.header
		c.frame = int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		last, lastFlags = h[frameTypeOffset], h[frameTypeOffset+1]
		c.header = c.header[:0]
		ended = c.frame == 0
	}
	return ended && last == frameHeaders && lastFlags&flagEndHeaders != 0 && lastFlags&flagEndStream == 0
}

// hold arms the timer that writes held bytes if nothing follows them.
func (c *headConn) hold() {
	if c.timer == nil {
		c.timer = time.AfterFunc(c.holdFor, c.release)
		return
	}
	c.timer.Reset(c.holdFor)
}

// release writes what is held, when the bytes expected after it did not
// come in time.
func (c *headConn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held) > 0 && !c.closed.Load() && c.err == nil {
		if _, err := c.writeHeld(); err != nil {
			c.err = err
		}
	}
}

func (c *headConn) writeHeld() (int, error) {
	if c.timer != nil {
		c.timer.Stop()
	}
	n, err := c.Conn.Write(c.held)
	if cap(c.held) > maxHeldBytes*2 {
		c.held = nil
	} else {
		c.held = c.held[:0]
	}
	return n, err
}

// Close drops what is held: the connection ends, the client sees no
// more of its streams either way. The connection is closed first, so a
// write blocked on it (holding mu) ends.
func (c *headConn) Close() error {
	c.closed.Store(true)
	err := c.Conn.Close()
	c.mu.Lock()
	c.held = nil
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	return err
}
