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
	rc    syscall.RawConn
	read  rawOp // state of the Read in progress
	write rawOp // state of the Write in progress; apart from read, as net.Conn allows both at once
}

// rawOp is one direction's system call and its result.
type rawOp struct {
	trap  uintptr // SYS_READ or SYS_WRITE
	buf   []byte  // the caller's buffer during one call
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool // do, bound once so calls do not allocate
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
	r.read.trap, r.write.trap = syscall.SYS_READ, syscall.SYS_WRITE
	r.read.fn, r.write.fn = r.read.do, r.write.do
	return r
}

// do runs one read or write of op.buf on fd, retrying EINTR; it reports
// false when the socket would block.
func (op *rawOp) do(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(op.trap, fd, uintptr(unsafe.Pointer(&op.buf[0])), uintptr(len(op.buf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		op.n, op.errno = int(n), e
		return true
	}
}

func (r *rawIOConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	op := &r.read
	op.buf, op.n, op.errno = p, 0, 0
	err := r.rc.Read(op.fn)
	op.buf = nil
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
