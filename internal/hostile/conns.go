package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// fdReserve is how many descriptors a flood leaves this process for its
// probes, the Admin API calls and the runtime.
const fdReserve = 64

// raiseNofile raises this process's descriptor limit to want: the soft
// limit up to the hard one, and past it where privilege allows. It
// returns the soft limit in force.
func raiseNofile(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("reading the descriptor limit: %w", err)
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	if want > lim.Max {
		raised := syscall.Rlimit{Cur: want, Max: want}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			return want, nil
		}
	}
	soft := syscall.Rlimit{Cur: min(want, lim.Max), Max: lim.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &soft); err != nil {
		return lim.Cur, fmt.Errorf("raising the descriptor limit to %d: %w", soft.Cur, err)
	}
	return soft.Cur, nil
}

// hardNofile is this process's hard descriptor limit.
func hardNofile() string {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return "unknown"
	}
	return strconv.FormatUint(lim.Max, 10)
}

// openFDs counts this process's open descriptors.
func openFDs() int {
	n := 0
	if d, err := os.Open("/proc/self/fd"); err == nil {
		names, _ := d.Readdirnames(-1)
		d.Close()
		n = len(names)
	}
	return n
}

// dialResult is a batch of connections and why the others failed.
type dialResult struct {
	conns    []*net.TCPConn
	failures map[string]int
	took     time.Duration
}

func (r dialResult) failureText() string {
	if len(r.failures) == 0 {
		return ""
	}
	var parts []string
	for why, n := range r.failures {
		parts = append(parts, fmt.Sprintf("%d× %s", n, why))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// dialMany opens up to n connections from the loopback address from to
// addr, with a few dials in flight at once, and stops early at within or
// when this process runs out of descriptors. Each new connection gets
// first written to it, if any. Every attack dials from its own source
// address so the connections of one do not compete with another's
// TIME_WAIT for ephemeral ports.
func dialMany(from, addr string, n int, first []byte, within time.Duration) dialResult {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	dialer := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Control: bindNoPort}
	var (
		mu  sync.Mutex // guards res
		res = dialResult{failures: map[string]int{}}
		wg  sync.WaitGroup
	)
	jobs := make(chan struct{})
	for range 128 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				c, err := dialer.DialContext(ctx, "tcp", addr)
				if err == nil && len(first) > 0 {
					if _, err = c.Write(first); err != nil {
						c.Close()
					}
				}
				mu.Lock()
				if err != nil {
					res.failures[shortError(err)]++
					if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
						cancel() // out of descriptors: keep what we have
					}
				} else {
					res.conns = append(res.conns, c.(*net.TCPConn))
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for range n {
		select {
		case jobs <- struct{}{}:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	res.took = time.Since(start)
	return res
}

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT.
const ipBindAddressNoPort = 24

// bindNoPort lets the kernel pick the source port at connect, by the
// whole address pair, instead of at bind among ports no socket holds:
// with thousands of connections open the latter search crawls.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	var err error
	c.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	return err
}

// peerState reads whatever the node sent on c without waiting and reports
// whether the node closed it, and the first bytes it sent, if any.
func peerState(c *net.TCPConn) (closed bool, got []byte) {
	raw, err := c.SyscallConn()
	if err != nil {
		return true, nil
	}
	buf := make([]byte, 4096)
	raw.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.Read(int(fd), buf)
			switch {
			case n > 0:
				if len(got) < 64 {
					got = append(got, buf[:min(n, 64-len(got))]...)
				}
			case errors.Is(err, syscall.EAGAIN):
				return true
			default: // 0 bytes is the node's FIN; an error its reset
				closed = true
				return true
			}
		}
	})
	return closed, got
}

// census is how many of a batch of connections the node closed, and the
// first line it answered on one of them.
type census struct {
	closed, answered int
	sample           string
}

func takeCensus(conns []*net.TCPConn) census {
	var c census
	for _, conn := range conns {
		closed, got := peerState(conn)
		if closed {
			c.closed++
		}
		if len(got) > 0 {
			c.answered++
			if c.sample == "" {
				line, _, _ := strings.Cut(string(got), "\r\n")
				c.sample = line
			}
		}
	}
	return c
}

func (c census) String() string {
	out := fmt.Sprintf("%d closed by the node", c.closed)
	if c.answered > 0 {
		out += fmt.Sprintf(", %d answered (%q)", c.answered, c.sample)
	}
	return out
}

func closeAll(conns []*net.TCPConn) {
	for _, c := range conns {
		c.Close()
	}
}
