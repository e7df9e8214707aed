//go:build unix

package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// rawIOConn reads and writes a non-blocking socket with raw system calls
// (no runtime entersyscall/exitsyscall), waiting through the runtime's
// poller only when the socket would block. On loopback a write runs the
// receiver's TCP path and often gets the thread preempted before it
// returns; with ordinary syscalls the runtime's monitor then takes the P
// away and hands it to another thread, and those hand-offs (futex wakes,
// thread switches) cost more than the proxy's own work. A raw call keeps
// the P, as an nginx worker keeps its CPU; the calls never block.
//
// Read and Write keep net.Conn's meaning: deadlines apply (the poller
// enforces them), EOF is io.EOF, other failures are *net.OpError.
//
// Concurrency: a Read and a Write may run at once, as net.Conn allows,
// but not two Reads or two Writes: each direction keeps its call's buffer
// in the connection (so that calls allocate nothing) and sets it before
// the poller takes the descriptor's lock. The proxy uses each connection
// from one goroutine per direction (fasthttp's connection goroutine; the
// upstream client, strictly in turns); Close may come from anywhere.
//
// The system calls themselves are per platform: raw ones on Linux
// (rawio_linux.go), ordinary ones on other Unix systems.
//
// An upstream connection also defers its writes (see exchangeConn).
type rawIOConn struct {
	net.Conn
	rc    syscall.RawConn
	read  rawOp // state of the Read in progress
	write rawOp // state of the Write in progress; apart from read, as net.Conn allows both at once

	// fd is the socket's descriptor, for checking idle upstream
	// connections many at once (see upstreamClient.sweep); -1 if unknown.
	fd int32

	// probing makes Read try the socket once without waiting (see
	// probeIdle); probeFn and probeDone are its bound call and result.
	probing   bool
	probeDone bool
	probeFn   func(fd uintptr)
}

// rawOp is one direction's system call and its result.
type rawOp struct {
	write bool   // a write; a read otherwise
	buf   []byte // the caller's buffer during one call
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool // do, bound once so calls do not allocate
	// total counts the bytes this direction has moved over the
	// connection's life; the upstream client compares it before and after
	// an exchange to tell what reached the socket.
	total uint64
}

func newRawIOConn(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawIOConn{Conn: c, rc: rc, fd: -1}
	if err := rc.Control(func(fd uintptr) { r.fd = int32(fd) }); err != nil {
		r.fd = -1
	}
	r.write.write = true
	r.read.fn, r.write.fn = r.read.do, r.write.do
	r.probeFn = func(fd uintptr) { r.probeDone = r.read.do(fd) }
	return r
}

// do runs one read or write of op.buf on fd, retrying EINTR; it reports
// false when the socket would block.
func (op *rawOp) do(fd uintptr) bool {
	for {
		var n int
		var e syscall.Errno
		if op.write {
			n, e = sysWrite(fd, op.buf)
		} else {
			n, e = sysRead(fd, op.buf)
		}
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		op.n, op.errno = n, e
		if e == 0 {
			op.total += uint64(n)
		}
		return true
	}
}

func (r *rawIOConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.probing {
		return r.readNow(p)
	}
	op := &r.read
	op.buf, op.n, op.errno = p, 0, 0
	err := r.rc.Read(op.fn)
	op.buf = nil
	return op.result(err, r)
}

// readNow is a Read that never waits: one read system call, outside the
// poller, so neither a read deadline that has passed nor an empty socket
// delays it. An empty socket answers errWouldBlock.
func (r *rawIOConn) readNow(p []byte) (int, error) {
	op := &r.read
	op.buf, op.n, op.errno = p, 0, 0
	r.probeDone = false
	err := r.rc.Control(r.probeFn)
	op.buf = nil
	if err == nil && !r.probeDone {
		return 0, errWouldBlock
	}
	return op.result(err, r)
}

// errWouldBlock is what a probing Read returns when nothing waits on the
// socket. It is a temporary net.Error, so a TLS connection above the
// socket keeps its state and stays usable (crypto/tls treats such errors
// as retryable).
var errWouldBlock net.Error = wouldBlockError{}

type wouldBlockError struct{}

func (wouldBlockError) Error() string   { return "nothing to read on the socket" }
func (wouldBlockError) Timeout() bool   { return true }
func (wouldBlockError) Temporary() bool { return true }

// result turns a finished read (err from the poller, then op's own
// outcome) into Read's return values.
func (op *rawOp) result(err error, r *rawIOConn) (int, error) {
	switch {
	case err != nil:
		return 0, r.opError("read", err)
	case op.errno != 0:
		return 0, r.opError("read", os.NewSyscallError("read", op.errno))
	case op.n == 0:
		return 0, io.EOF
	}
	return op.n, nil
}

func (r *rawIOConn) Write(p []byte) (int, error) {
	op := &r.write
	written := 0
	for written < len(p) {
		op.buf, op.n, op.errno = p[written:], 0, 0
		err := r.rc.Write(op.fn)
		op.buf = nil
		switch {
		case err != nil:
			return written, r.opError("write", err)
		case op.errno != 0:
			return written, r.opError("write", os.NewSyscallError("write", op.errno))
		}
		written += op.n
	}
	return written, nil
}

// opError gives err the shape net.Conn's own errors have.
func (r *rawIOConn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		// RawConn's errors already are (op "raw-read"/"raw-write"); the
		// wrapped error (deadline exceeded, use of closed connection) is
		// what callers test.
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: err}
}

// exchangeConn is an upstream connection, used strictly in turns: a
// request is written, then its response read. A plain Read right after the
// Write finds the socket empty (the upstream has not answered yet), fails
// with EAGAIN and only then waits: one wasted system call per request. So
// Write only keeps the request, and the next Read sends it from inside the
// poller's read loop, after the poller forgot earlier readiness and before
// waiting: the answer's arrival then wakes the wait, and the first read
// finds it, as nginx's event loop does. A request too large to keep, or a
// send that would block, goes out through ordinary writes instead.
//
// The turns are what make this safe: nothing is expected from the upstream
// before the request, and a connection it closed meanwhile answers the
// request with a reset, which wakes the wait too. Only a TLS close alert
// is written with no read after it; Close drops it, and the upstream sees
// the connection close all the same.
type exchangeConn struct {
	*rawIOConn
	pending  []byte // the request kept by Write, not yet sent
	sent     int    // how much of pending the current Read has sent
	sendErr  syscall.Errno
	exchange func(fd uintptr) bool // sendThenRead, bound once
	// tunnel is set once the connection carries an upgraded protocol
	// (tunnel.go): reads and writes then run at once, in no turns, so
	// writes go straight out. Set before the tunnel's goroutines start.
	tunnel bool
}

// maxPending is the largest request kept for sending with the Read; the
// proxy writes a request's head, and its body when the two fit in this
// size, in one Write.
const maxPending = 16 << 10

func newExchangeConn(c net.Conn) net.Conn {
	r, ok := newRawIOConn(c).(*rawIOConn)
	if !ok {
		return c
	}
	e := &exchangeConn{rawIOConn: r, pending: make([]byte, 0, 1024)}
	e.exchange = e.sendThenRead
	return e
}

func (e *exchangeConn) Write(p []byte) (int, error) {
	if e.tunnel {
		return e.rawIOConn.Write(p)
	}
	if len(e.pending)+len(p) <= maxPending {
		e.pending = append(e.pending, p...)
		return len(p), nil
	}
	if err := e.flush(); err != nil {
		return 0, err
	}
	return e.rawIOConn.Write(p)
}

// flush sends the kept request with ordinary writes.
func (e *exchangeConn) flush() error {
	if len(e.pending) == 0 {
		return nil
	}
	_, err := e.rawIOConn.Write(e.pending)
	e.pending = e.pending[:0]
	return err
}

func (e *exchangeConn) Read(p []byte) (int, error) {
	if len(e.pending) == 0 || len(p) == 0 || e.probing {
		// A probe sends nothing: what is kept (the end of a TLS
		// handshake) goes with the request.
		return e.rawIOConn.Read(p)
	}
	op := &e.read
	op.buf, op.n, op.errno = p, 0, 0
	e.sent, e.sendErr = 0, 0
	err := e.rc.Read(e.exchange)
	op.buf = nil
	sent := e.sent
	switch {
	case e.sendErr != 0:
		e.pending = e.pending[:0]
		return 0, e.opError("write", os.NewSyscallError("write", e.sendErr))
	case sent < len(e.pending) && err == nil:
		// The socket would not take it all at once: send the rest the
		// ordinary way, then read the ordinary way.
		e.pending = e.pending[:copy(e.pending, e.pending[sent:])]
		if err := e.flush(); err != nil {
			return 0, err
		}
		return e.rawIOConn.Read(p)
	}
	e.pending = e.pending[:0]
	return op.result(err, e.rawIOConn)
}

// sendThenRead is the poller's read callback of an exchange: first the
// kept request (false once it is all sent, to wait for the answer), then
// the read. It stops early (true) when the send fails or would block.
func (e *exchangeConn) sendThenRead(fd uintptr) bool {
	if e.sent < len(e.pending) {
		for {
			rest := e.pending[e.sent:]
			n, errno := sysWrite(fd, rest)
			switch errno {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return true
			case 0:
				e.sent += int(n)
				e.write.total += uint64(n)
				return e.sent < len(e.pending)
			default:
				e.sendErr = errno
				return true
			}
		}
	}
	return e.read.do(fd)
}
