package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// boundTransport is memberlist's network layer for one cluster_listen
// address: UDP packets on one socket, TCP streams on one listener, and
// every packet and stream this node starts leaves from the bound address.
//
// memberlist's own NetTransport sends UDP from its bound socket but dials
// TCP from whatever source the kernel picks (127.0.0.1 for a peer on
// loopback, the outgoing interface's first address on a multi-homed
// host). A peer then sees this node's push/pull and fallback probes come
// from an address that is not its own: a firewall rule written for the
// node's address (an nftables partition, a security group) cuts its UDP
// but not its TCP, so a "cut" node kept syncing state over TCP and a
// partition test cut one direction only. Binding the dial's source to
// cluster_listen's address makes both protocols come from where the node
// says it is. A wildcard bind (0.0.0.0, ::) keeps the kernel's choice.
type boundTransport struct {
	bindIP   net.IP // nil for a wildcard bind
	tcp      *net.TCPListener
	udp      *net.UDPConn
	dialer   net.Dialer
	logger   *log.Logger
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	closing atomic.Bool
	wg      sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*boundTransport)(nil)

// udpReadBuffer is the receive buffer asked for the UDP socket: a burst of
// gossip (a node rejoining, a flood of hints) must not be dropped by the
// kernel while the packet goroutine hands the previous one on.
const udpReadBuffer = 2 << 20

// maxPacket is the largest UDP datagram read.
const maxPacket = 65536

// newBoundTransport binds host:port on TCP and UDP (port 0 picks one free
// port for both) and starts reading from them.
func newBoundTransport(host string, port int, logger *log.Logger) (*boundTransport, error) {
	ip := net.ParseIP(host)
	if host != "" && ip == nil {
		return nil, fmt.Errorf("cluster_listen host %q is not an IP address", host)
	}
	t := &boundTransport{
		logger:   logger,
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
	}
	if ip != nil && !ip.IsUnspecified() {
		t.bindIP = ip
		t.dialer.LocalAddr = &net.TCPAddr{IP: ip}
	}
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, err
	}
	port = tcp.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		tcp.Close()
		return nil, err
	}
	if err := setReadBuffer(udp, udpReadBuffer); err != nil {
		tcp.Close()
		udp.Close()
		return nil, fmt.Errorf("sizing the gossip UDP receive buffer: %w", err)
	}
	t.tcp, t.udp = tcp, udp
	t.wg.Add(2)
	go t.acceptStreams()
	go t.readPackets()
	return t, nil
}

// setReadBuffer asks for size bytes, halving until the kernel agrees.
func setReadBuffer(c *net.UDPConn, size int) error {
	var err error
	for ; size > 0; size /= 2 {
		if err = c.SetReadBuffer(size); err == nil {
			return nil
		}
	}
	return err
}

// Port is the bound port (the chosen one when cluster_listen's port is 0).
func (t *boundTransport) Port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr returns the configured address, or the bound one.
// Config always resolves cluster_advertise before (advertiseAddr), so the
// second case is only a fallback.
func (t *boundTransport) FinalAdvertiseAddr(host string, port int) (net.IP, int, error) {
	if host == "" {
		if t.bindIP == nil {
			return nil, 0, errors.New("cluster_listen is a wildcard and no advertise address was given")
		}
		return t.bindIP, t.Port(), nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, 0, fmt.Errorf("advertise address %q is not an IP address", host)
	}
	if ip4 := ip.To4(); ip4 != nil {
		ip = ip4
	}
	return ip, port, nil
}

// WriteTo sends one packet from the bound UDP socket.
func (t *boundTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, to)
	// The time after the write: memberlist measures probe round trips from it.
	return time.Now(), err
}

// WriteToAddress is WriteTo; the peer's name changes nothing here.
func (t *boundTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

// DialTimeout opens a stream from the bound address.
func (t *boundTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	d := t.dialer // a copy: Timeout differs per call and dials run concurrently
	d.Timeout = timeout
	return d.Dial("tcp", addr)
}

// DialAddressTimeout is DialTimeout; the peer's name changes nothing here.
func (t *boundTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// PacketCh delivers received UDP packets.
func (t *boundTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh delivers accepted TCP connections.
func (t *boundTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown closes both sockets and waits for the reading goroutines.
// memberlist calls it before it stops reading the two channels, so a
// hand-off in progress completes.
func (t *boundTransport) Shutdown() error {
	t.closing.Store(true)
	t.tcp.Close()
	t.udp.Close()
	t.wg.Wait()
	return nil
}

// acceptStreams hands every accepted connection to memberlist. A failed
// accept (out of descriptors) is retried after a growing pause, never in
// a tight loop.
func (t *boundTransport) acceptStreams() {
	defer t.wg.Done()
	const minPause, maxPause = 5 * time.Millisecond, time.Second
	pause := time.Duration(0)
	for {
		conn, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.closing.Load() {
				return
			}
			pause = min(max(2*pause, minPause), maxPause)
			t.logger.Printf("[ERR] memberlist: accepting a gossip TCP connection: %v", err)
			time.Sleep(pause)
			continue
		}
		pause = 0
		t.streamCh <- conn
	}
}

// readPackets hands every non-empty datagram to memberlist, each in a
// buffer of its own (memberlist keeps it) and of its own size: a fresh
// 64 KB buffer per packet made a flood of small packets (forged hints)
// allocate and clear 640 MB a second at 10 000 packets, and the garbage
// collector's assists landed on proxy requests.
func (t *boundTransport) readPackets() {
	defer t.wg.Done()
	read := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFrom(read)
		at := time.Now() // as close to the read as possible: probe round trips
		if err != nil {
			if t.closing.Load() {
				return
			}
			t.logger.Printf("[ERR] memberlist: reading a gossip UDP packet: %v", err)
			continue
		}
		if n == 0 {
			continue
		}
		t.packetCh <- &memberlist.Packet{Buf: bytes.Clone(read[:n]), From: from, Timestamp: at}
	}
}
