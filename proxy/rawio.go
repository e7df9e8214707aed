package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
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
type rawIOConn struct {
	net.Conn
	rc      syscall.RawConn
	buf     []byte // the caller's buffer during one Read or Write
	n       int
	errno   syscall.Errno
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
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
	r := &rawIOConn{Conn: c, rc: rc}
	r.readFn = r.readOnce
	r.writeFn = r.writeOnce
	return r
}

// rawOnce runs one read or write of r.buf on fd, retrying EINTR; it
// reports false when the socket would block.
func (r *rawIOConn) rawOnce(trap, fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		r.n, r.errno = int(n), e
		return true
	}
}

func (r *rawIOConn) readOnce(fd uintptr) bool  { return r.rawOnce(syscall.SYS_READ, fd) }
func (r *rawIOConn) writeOnce(fd uintptr) bool { return r.rawOnce(syscall.SYS_WRITE, fd) }

func (r *rawIOConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.buf, r.n, r.errno = p, 0, 0
	err := r.rc.Read(r.readFn)
	r.buf = nil
	switch {
	case err != nil:
		return 0, r.opError("read", err)
	case r.errno != 0:
		return 0, r.opError("read", os.NewSyscallError("read", r.errno))
	case r.n == 0:
		return 0, io.EOF
	}
	return r.n, nil
}

func (r *rawIOConn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		r.buf, r.n, r.errno = p[written:], 0, 0
		err := r.rc.Write(r.writeFn)
		r.buf = nil
		switch {
		case err != nil:
			return written, r.opError("write", err)
		case r.errno != 0:
			return written, r.opError("write", os.NewSyscallError("write", r.errno))
		}
		written += r.n
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
