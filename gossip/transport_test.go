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
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-tr.PacketCh():
			if string(p.Buf) != "ping" {
				t.Errorf("got packet %q, want %q", p.Buf, "ping")
			}
		case <-time.After(2 * time.Second):
			t.Fatal("no packet delivered within 2s")
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
