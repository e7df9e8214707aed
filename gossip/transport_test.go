package gossip

import (
	"io"
	"log"
	"net"
	"strconv"
	"testing"
	"time"
)

// TestTransportSendsFromItsBindAddress checks that both of memberlist's
// paths leave from cluster_listen's address: a firewall rule on a node's
// address must cut its TCP push/pull as well as its UDP gossip.
// (memberlist's NetTransport dials TCP from the kernel's choice,
// 127.0.0.1 here, so a partition cut one direction only.)
func TestTransportSendsFromItsBindAddress(t *testing.T) {
	const bindHost, peerHost = "127.0.1.30", "127.0.1.31"
	tr, err := newBoundTransport(bindHost, 0, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown() })

	t.Run("tcp dial", func(t *testing.T) {
		ln, err := net.Listen("tcp", peerHost+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		accepted := make(chan net.Addr, 1)
		go func() {
			if c, err := ln.Accept(); err == nil {
				accepted <- c.RemoteAddr()
				c.Close()
			}
		}()
		conn, err := tr.DialTimeout(ln.Addr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if got := hostOf(<-accepted); got != bindHost {
			t.Errorf("the peer saw the stream come from %s, want %s", got, bindHost)
		}
	})

	t.Run("udp packet", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", peerHost+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if _, err := tr.WriteTo([]byte("x"), pc.LocalAddr().String()); err != nil {
			t.Fatal(err)
		}
		_ = pc.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 16)
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := hostOf(from); got != bindHost {
			t.Errorf("the peer saw the packet come from %s, want %s", got, bindHost)
		}
	})

	t.Run("receives", func(t *testing.T) {
		c, err := net.Dial("udp", net.JoinHostPort(bindHost, strconv.Itoa(tr.Port())))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var got [][]byte
		for _, msg := range []string{"ping", "pong"} {
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			select {
			case p := <-tr.PacketCh():
				got = append(got, p.Buf)
			case <-time.After(2 * time.Second):
				t.Fatalf("packet %q not delivered within 2s", msg)
			}
		}
		// memberlist keeps each packet's buffer: a second packet must not
		// overwrite the first, and a small packet must not hold a 64 KB
		// read buffer (a flood of them was 640 MB/s of garbage).
		if string(got[0]) != "ping" || string(got[1]) != "pong" {
			t.Errorf("got packets %q and %q, want \"ping\" and \"pong\"", got[0], got[1])
		}
		if c := cap(got[0]); c > 64 {
			t.Errorf("a 4-byte packet came in a buffer of %d bytes, want one of its own size", c)
		}
	})
}

// TestTransportWildcardBindKeepsTheKernelsSource checks a 0.0.0.0 bind
// dials without a fixed source (binding a dial to 0.0.0.0 is no choice).
func TestTransportWildcardBindKeepsTheKernelsSource(t *testing.T) {
	tr, err := newBoundTransport("0.0.0.0", 0, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown()
	if tr.dialer.LocalAddr != nil || tr.bindIP != nil {
		t.Errorf("got dialer source %v and bind IP %v, want none for a wildcard bind", tr.dialer.LocalAddr, tr.bindIP)
	}
}

func hostOf(a net.Addr) string {
	host, _, _ := net.SplitHostPort(a.String())
	return host
}
