package h2bridge

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
)

// countingConn counts the writes to a connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// serve starts a Server with handler on one end of an in-memory
// connection and returns an HTTP/2 client on the other, and the server
// end's write counter.
func serve(t *testing.T, handler fasthttp.RequestHandler, hold time.Duration) (*http2.ClientConn, *countingConn) {
	t.Helper()
	srv := New(handler, Options{HoldHeaders: hold})
	clientSide, serverSide := net.Pipe()
	counted := &countingConn{Conn: serverSide}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeConn(counted)
	}()
	t.Cleanup(func() {
		clientSide.Close()
		<-done
	})
	cc, err := (&http2.Transport{AllowHTTP: true}).NewClientConn(clientSide)
	if err != nil {
		t.Fatalf("client conn: %v", err)
	}
	return cc, counted
}

func get(t *testing.T, cc *http2.ClientConn, path string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://a.test"+path, nil)
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	return resp
}

// TestAnswerInOneWrite: an answer whose body is in hand reaches the
// client connection in one write, headers and body together (x/net/http2
// alone flushes its HEADERS frame before it takes the DATA frame: two).
func TestAnswerInOneWrite(t *testing.T) {
	cc, conn := serve(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("X-Test", "1")
		ctx.SetBodyString("ok\n")
	}, time.Hour) // a hold that timed out would not count as one write
	for i := range 20 {
		before := conn.writes.Load()
		resp := get(t, cc, "/")
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok\n" || resp.Header.Get("X-Test") != "1" {
			t.Fatalf("got %d %q %v, want 200 \"ok\\n\" with X-Test", resp.StatusCode, b, resp.Header)
		}
		if got := conn.writes.Load() - before; i > 0 && got != 1 {
			t.Errorf("request %d: got %d writes to the connection, want 1", i, got)
		}
	}
}

// TestStreamedAnswerNotHeld: the headers and first piece of an answer
// whose body is a stream that goes on (as gRPC's) reach the client while
// the stream waits, even just after answers whose bodies were in hand.
func TestStreamedAnswerNotHeld(t *testing.T) {
	release := make(chan struct{})
	cc, _ := serve(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("X-Test", "1")
		if string(ctx.Path()) == "/in-hand" {
			ctx.SetBodyString("ok\n")
			return
		}
		ctx.SetBodyStream(&waitingReader{release: release, pieces: []string{"early", "late"}}, -1)
	}, time.Hour)
	for range 3 {
		resp := get(t, cc, "/in-hand")
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	resp := get(t, cc, "/stream") // returns once the headers arrived
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Test") != "1" {
		t.Fatalf("got %d %v, want 200 with X-Test", resp.StatusCode, resp.Header)
	}
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "early" {
		t.Fatalf("got first piece %q (%v), want %q before the stream goes on", first, err, "early")
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "late" {
		t.Fatalf("got the rest %q, want %q", rest, "late")
	}
}

// waitingReader gives its first piece at once and the others once
// release is closed.
type waitingReader struct {
	release chan struct{}
	pieces  []string
	n       int
}

func (r *waitingReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		<-r.release
	}
	if r.n == len(r.pieces) {
		return 0, io.EOF
	}
	r.n++
	return copy(p, r.pieces[r.n-1]), nil
}

// TestStreamedAnswerHeadersFirst: the headers of a streamed answer reach
// the client before its first piece, however late that comes (an event
// stream that is quiet at first), as nginx sends an upstream's headers on
// receipt. get fails after 5 s if they wait for the body.
func TestStreamedAnswerHeadersFirst(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	cc, _ := serve(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("X-Test", "1")
		ctx.SetBodyStream(&lateReader{release: release, body: "late"}, -1)
	}, time.Hour)

	resp := get(t, cc, "/events")
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Test") != "1" {
		t.Fatalf("got %d %v, want 200 with X-Test", resp.StatusCode, resp.Header)
	}
	free()
	if body, _ := io.ReadAll(resp.Body); string(body) != "late" {
		t.Fatalf("got body %q, want %q", body, "late")
	}
}

// lateReader gives body once release is closed.
type lateReader struct {
	release chan struct{}
	body    string
	done    bool
}

func (r *lateReader) Read(p []byte) (int, error) {
	<-r.release
	if r.done {
		return 0, io.EOF
	}
	r.done = true
	return copy(p, r.body), nil
}
