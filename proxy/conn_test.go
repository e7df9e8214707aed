package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// tcpPair is a plain loopback TCP connection: the dialing end and the
// accepted end, both closed at cleanup.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	p, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close(); p.Close() })
	return c, p
}

// connPair is a loopback TCP connection: the proxy's wrapped end and the
// peer's plain end, both closed at cleanup.
func connPair(t *testing.T, slack time.Duration) (wrapped, peer net.Conn) {
	t.Helper()
	c, p := tcpPair(t)
	w := newCoarseConn(newRawIOConn(c), slack)
	t.Cleanup(func() { w.Close() })
	return w, p
}

func TestWrappedConnIO(t *testing.T) {
	c, p := connPair(t, time.Millisecond)
	big := make([]byte, 4<<20) // more than the socket buffers: Write must wait
	go func() {
		_, _ = p.Write([]byte("ping"))
		_, _ = io.CopyN(io.Discard, p, int64(len(big)))
		p.Close()
	}()
	buf := make([]byte, 16)
	if n, err := io.ReadFull(c, buf[:4]); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("read: got %q, %v; want \"ping\", nil", buf[:n], err)
	}
	if n, err := c.Write(big); n != len(big) || err != nil {
		t.Fatalf("write: got %d, %v; want %d, nil", n, err, len(big))
	}
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read after peer closed: got %d, %v; want 0, io.EOF", n, err)
	}
	c.Close()
	if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: got %v, want net.ErrClosed", err)
	}
}

func TestCoarseDeadlines(t *testing.T) {
	const slack = 50 * time.Millisecond
	t.Run("read timeout fires, not early, at most slack late", func(t *testing.T) {
		c, _ := connPair(t, slack)
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(100 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want a timeout", err)
		}
		if d := time.Since(start); d < 100*time.Millisecond || d > 100*time.Millisecond+slack+time.Second {
			t.Fatalf("timed out after %v, want 100ms plus at most slack", d)
		}
	})
	t.Run("a later deadline within slack keeps the armed one", func(t *testing.T) {
		c, _ := connPair(t, slack)
		cc := c.(*coarseConn)
		now := time.Now()
		_ = c.SetReadDeadline(now.Add(time.Second))
		armed := cc.readAt
		_ = c.SetReadDeadline(now.Add(time.Second + slack/2))
		if !cc.readAt.Equal(armed) {
			t.Fatalf("got re-armed at %v, want %v kept", cc.readAt, armed)
		}
		_ = c.SetReadDeadline(now.Add(time.Second + 2*slack))
		if cc.readAt.Equal(armed) {
			t.Fatalf("got %v kept, want re-armed past the request", armed)
		}
	})
	t.Run("cleared read deadline does not fire", func(t *testing.T) {
		c, p := connPair(t, slack)
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_ = c.SetReadDeadline(time.Time{})
		go func() {
			time.Sleep(150 * time.Millisecond)
			_, _ = p.Write([]byte("x"))
		}()
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatalf("got %v, want the byte sent after the old deadline", err)
		}
	})
	t.Run("write deadline applies", func(t *testing.T) {
		c, _ := connPair(t, slack)
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, err := c.Write(make([]byte, 64<<20)) // the peer never reads
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want a timeout", err)
		}
	})
}

// net.Conn allows a Read and a Write at the same time; the wrapper keeps
// their buffers apart.
func TestWrappedConnConcurrentReadAndWrite(t *testing.T) {
	c, p := connPair(t, time.Millisecond)
	go func() { _, _ = io.Copy(p, p) }() // the peer echoes
	const size = 1 << 20
	sent := make([]byte, size)
	for i := range sent {
		sent[i] = byte(i % 251)
	}
	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Write(sent)
		writeErr <- err
	}()
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("write: %v", err)
	}
	for i := range got {
		if got[i] != sent[i] {
			t.Fatalf("byte %d: got %d, want %d", i, got[i], sent[i])
		}
	}
}

// An upstream connection sends a kept request with the read of its answer;
// when the socket cannot take the request at once, the rest goes out the
// ordinary way and the answer is still read.
func TestExchangeConnSendThatWouldBlock(t *testing.T) {
	raw, peer := tcpPair(t)
	// Fill small socket buffers while the peer is not reading, so the
	// kept request cannot go out at once.
	_ = raw.(*net.TCPConn).SetWriteBuffer(64 << 10)
	_ = peer.(*net.TCPConn).SetReadBuffer(64 << 10)
	filler := 0
	chunk := make([]byte, 64<<10)
	_ = raw.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	for {
		n, err := raw.Write(chunk)
		filler += n
		if err != nil {
			break
		}
	}
	_ = raw.SetWriteDeadline(time.Time{})
	c := wrapUpstreamConn(raw, time.Millisecond)

	request := []byte("GET / HTTP/1.1\r\nHost: upstream\r\nX-Big: " + strings.Repeat("x", 12<<10) + "\r\n\r\n")
	if n, err := c.Write(request); n != len(request) || err != nil {
		t.Fatalf("write: got %d, %v; want %d, nil", n, err, len(request))
	}
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // let the read try its send first
		_, _ = io.CopyN(io.Discard, peer, int64(filler))
		b := make([]byte, len(request))
		_, _ = io.ReadFull(peer, b)
		_, _ = peer.Write([]byte("answer"))
		got <- b
	}()
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "answer" {
		t.Fatalf("read: got %q, %v; want \"answer\", nil", buf[:n], err)
	}
	if b := <-got; string(b) != string(request) {
		t.Fatalf("the peer got %q, want %q", b, request)
	}
}
