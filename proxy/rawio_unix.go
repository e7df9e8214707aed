//go:build unix && !linux

package proxy

import (
	"errors"
	"syscall"
)

// Other Unix systems use ordinary system calls: portable, at the cost of
// the runtime's hand-offs rawio_linux.go avoids.

func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return max(n, 0), errnoOf(err)
}

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return max(n, 0), errnoOf(err)
}

func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if err != nil && !errors.As(err, &errno) {
		return syscall.EIO
	}
	return errno
}

// pollNow is not used outside Linux: idle connections are probed one by
// one (see upstreamClient.sweep).
func pollNow([]pollFd) bool { return false }
