package proxy

import (
	"syscall"
	"unsafe"
)

// On Linux the socket calls are raw: no entersyscall/exitsyscall, so the
// calling thread keeps its P (see rawIOConn). They never block: the
// socket is non-blocking.

func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

// pollNow reports in each fds entry's revents what its socket holds now
// (bytes, an end, an error), without waiting: one ppoll system call for all
// of them. ok is false when the call failed and nothing is known.
func pollNow(fds []pollFd) (ok bool) {
	var now syscall.Timespec // a zero timeout: do not wait
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
			uintptr(unsafe.Pointer(&now)), 0, 0, 0)
		switch e {
		case 0:
			return true
		case syscall.EINTR:
			continue
		}
		return false
	}
}
