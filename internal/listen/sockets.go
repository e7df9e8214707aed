package listen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// EnvInherited is the environment variable (not GRAPEVINE_…: those are
// configuration keys) through which a node started by
// a running node's handover (grapevine start, SIGUSR2) receives that node's
// listening sockets: "addr=fd;addr=fd", addr as configured.
const EnvInherited = "HANDOVER_LISTEN_FDS"

// Sockets owns the listening sockets of one node across an in-place
// restart: it binds the configured addresses, taking the socket handed
// down by the process this one replaces when there is one for the address,
// and it hands its own open sockets to the process that replaces it. A
// socket handed over stays the same socket, so connections waiting in its
// queue are never refused, as with nginx's binary upgrade.
type Sockets struct {
	mu        sync.Mutex
	inherited map[string]*os.File         // handed down, not taken yet
	bound     map[string]*net.TCPListener // bound or taken here, by address
	// handedDown says the node replaces a running one (it was given
	// sockets), which still holds what cannot be handed over: the gossip
	// port, until it leaves.
	handedDown bool
}

// NewSockets makes the sockets of a node whose environment is environ.
func NewSockets(environ []string) (*Sockets, error) {
	s := &Sockets{inherited: map[string]*os.File{}, bound: map[string]*net.TCPListener{}}
	for _, kv := range environ {
		value, ok := strings.CutPrefix(kv, EnvInherited+"=")
		if !ok || value == "" {
			continue
		}
		for item := range strings.SplitSeq(value, ";") {
			addr, fdText, ok := strings.Cut(item, "=")
			fd, err := strconv.Atoi(fdText)
			if !ok || err != nil || fd < 3 {
				return nil, fmt.Errorf("%s: %q is not addr=fd", EnvInherited, item)
			}
			s.inherited[addr] = os.NewFile(uintptr(fd), addr)
		}
	}
	s.handedDown = len(s.inherited) > 0
	return s, nil
}

// HandedDown reports whether the node was given the sockets of a running
// node it replaces.
func (s *Sockets) HandedDown() bool { return s.handedDown }

// Listen returns a TCP listener on addr: the socket handed down for it, or
// a new one.
func (s *Sockets) Listen(ctx context.Context, addr string) (net.Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.inherited[addr]; ok {
		delete(s.inherited, addr)
		ln, err := net.FileListener(f)
		f.Close() // FileListener has its own copy
		if err != nil {
			return nil, fmt.Errorf("taking over the socket of %s: %w", addr, err)
		}
		return s.keep(addr, ln)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return s.keep(addr, ln)
}

// keep records ln for a later handover.
func (s *Sockets) keep(addr string, ln net.Listener) (net.Listener, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("%s: not a TCP socket", addr)
	}
	s.bound[addr] = tl
	return tl, nil
}

// Handover returns copies of the open sockets, to become descriptors
// first, first+1, … of a new process, and the environment entry that
// tells it which is which. The caller closes the files once the process
// started.
func (s *Sockets) Handover(first int) (files []*os.File, env string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var items []string
	for addr, ln := range s.bound {
		f, ferr := ln.File()
		if ferr != nil {
			if errors.Is(ferr, net.ErrClosed) {
				continue // closed since: nothing to hand over
			}
			for _, f := range files {
				f.Close()
			}
			return nil, "", fmt.Errorf("handing over %s: %w", addr, ferr)
		}
		items = append(items, addr+"="+strconv.Itoa(first+len(files)))
		files = append(files, f)
	}
	return files, EnvInherited + "=" + strings.Join(items, ";"), nil
}

// CloseUnused closes the sockets handed down that no listener took (an
// address no longer configured).
func (s *Sockets) CloseUnused() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for addr, f := range s.inherited {
		f.Close()
		delete(s.inherited, addr)
	}
}
