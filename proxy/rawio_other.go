//go:build !unix

package proxy

import "net"

// Without Unix sockets the proxy uses connections as the net package gives
// them: no raw calls, no request sent from inside the read, and no idle
// check of pooled upstream connections (socketOf finds no socket).

type rawIOConn struct {
	net.Conn
	read, write struct{ total uint64 }
	probing     bool
	fd          int32
}

type exchangeConn struct {
	*rawIOConn
	tunnel bool
}

func newRawIOConn(c net.Conn) net.Conn { return c }

func newExchangeConn(c net.Conn) net.Conn { return c }

var errWouldBlock net.Error = wouldBlockError{}

type wouldBlockError struct{}

func (wouldBlockError) Error() string   { return "nothing to read on the socket" }
func (wouldBlockError) Timeout() bool   { return true }
func (wouldBlockError) Temporary() bool { return true }

// maxPending is the largest request written in one piece with its body.
const maxPending = 16 << 10

func pollNow([]pollFd) bool { return false }
