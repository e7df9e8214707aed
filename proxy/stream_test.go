package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
)

// An answer declaring more than the proxy buffers passes through with
// bounded memory, as nginx passes on what its buffers cannot hold; the
// connection is pooled again once the body ended where it said.
func TestLargeAnswerStreams(t *testing.T) {
	const size = 100 << 20
	block := make([]byte, 1<<20)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for sent := 0; sent < size; sent += len(block) {
			if _, err := w.Write(block); err != nil {
				return
			}
		}
	})
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute(idA, "s1", paths("/"))})
	s := startProxy(t, snap)
	before := heapInUse()
	resp, err := http.Get("http://" + s.Addr().String() + "/big")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	peak := int64(0)
	buf := make([]byte, 1<<20)
	got := 0
	for {
		n, err := resp.Body.Read(buf)
		got += n
		if got%(32<<20) < n {
			peak = max(peak, heapInUse()-before)
		}
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || got != size {
		t.Fatalf("got %d with %d bytes, want 200 with %d", resp.StatusCode, got, size)
	}
	if peak > 48<<20 {
		t.Errorf("heap grew by %d MiB while %d MiB passed, want well under the body", peak>>20, size>>20)
	}
	if status, _, _ := send(t, s, "GET", "/small", nil); status != 200 || up.conns.Load() != 1 {
		t.Errorf("got %d over %d upstream connections, want 200 over the first one again", status, up.conns.Load())
	}
}

// With response_buffering off each piece of an answer reaches the client as
// it arrives (server-sent events), not when the answer ends (Kong's route
// field, kong/db/schema/entities/routes.lua; nginx's proxy_buffering off).
func TestUnbufferedAnswerStreamsPieceByPiece(t *testing.T) {
	next := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			io.WriteString(w, "data: event "+strconv.Itoa(i)+"\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-next: // the client saw this one
			case <-time.After(10 * time.Second):
				return
			}
		}
	})
	noBuffering := func(r *entity.Route) { r.ResponseBuffering = false }
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute(idA, "s1", paths("/"), noBuffering)})
	s := startProxy(t, snap)
	resp, err := http.Get("http://" + s.Addr().String() + "/events")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != "data: event "+strconv.Itoa(i)+"\n" {
			t.Fatalf("event %d: got %q, %v; want it before the answer ends", i, line, err)
		}
		br.ReadString('\n')
		next <- struct{}{}
	}
	if rest, _ := io.ReadAll(br); len(strings.TrimSpace(string(rest))) != 0 {
		t.Errorf("got %q after the events, want nothing", rest)
	}
}

// A client that leaves in the middle of a streamed answer closes the
// upstream connection: what is left of the body must not reach the next
// request.
func TestAbandonedStreamClosesTheUpstreamConnection(t *testing.T) {
	const size = 64 << 20
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/big" {
			io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size+1))
		block := make([]byte, 1<<20)
		for sent := 0; sent <= size; sent += len(block) {
			if _, err := w.Write(block); err != nil {
				return
			}
		}
	})
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute(idA, "s1", paths("/"), noStrip)})
	s := startProxy(t, snap)
	c := rawConn(t, s)
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatalf("read status: %v", err)
	}
	c.Close()
	if status, _, body := send(t, s, "GET", "/small", nil); status != 200 || body != "ok" {
		t.Fatalf("got %d %q, want 200 ok on a clean connection", status, body)
	}
}

// The client's answer is HTTP/1.1 whatever the upstream spoke, as nginx's
// is: an HTTP/1.0 status line on an answer the proxy sends chunked made
// clients read the chunk framing as body and wait for the connection to
// close.
func TestHTTP10UpstreamAnswersAsHTTP11(t *testing.T) {
	tests := []struct{ name, answer string }{
		{"with a length", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"},
		{"until close", "HTTP/1.0 200 OK\r\n\r\nhello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newRawUpstream(t, func(string) (string, bool) { return tt.answer, true })
			s := startProxy(t, mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute(idA, "s1", paths("/"))}))
			resp, err := http.Get("http://" + s.Addr().String() + "/old")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.Proto != "HTTP/1.1" || string(body) != "hello" {
				t.Errorf("got %s %q (%v), want HTTP/1.1 \"hello\"", resp.Proto, body, err)
			}
		})
	}
}
