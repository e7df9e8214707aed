package proxy

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
)

// patternReader yields n bytes of a repeating pattern without holding
// them, hashing what it gives.
type patternReader struct {
	left int64
	off  int
	sum  hash.Hash
}

func newPatternReader(n int64) *patternReader {
	return &patternReader{left: n, sum: sha256.New()}
}

const pattern = "0123456789abcdefghijklmnopqrstuvwxyz"

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), p.left))
	for i := range n {
		b[i] = pattern[(p.off+i)%len(pattern)]
	}
	p.off = (p.off + n) % len(pattern)
	p.left -= int64(n)
	p.sum.Write(b[:n])
	return n, nil
}

// received is what a counting upstream saw of one request's body.
type received struct {
	length           int64  // Content-Length as declared, -1 chunked
	transferEncoding string // as declared
	bytes            int64
	sha256           string
}

// countingUpstream hashes every request body it gets and reports it.
func countingUpstream(t *testing.T) (*upstream, <-chan received) {
	t.Helper()
	got := make(chan received, 16)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.New()
		n, _ := io.Copy(sum, r.Body)
		got <- received{length: r.ContentLength, transferEncoding: strings.Join(r.TransferEncoding, ","),
			bytes: n, sha256: hex.EncodeToString(sum.Sum(nil))}
		io.WriteString(w, "stored")
	})
	return up, got
}

// Uploads far larger than what the proxy keeps in memory reach the
// upstream whole, with bounded memory, and with their length: nginx
// buffers a body (in memory up to client_body_buffer_size, then in a
// temporary file) and sends it with Content-Length, chunked or not
// (kong/templates/nginx_kong.lua: proxy_request_buffering on; Kong's
// default nginx_http_client_max_body_size is 0, no limit,
// kong/templates/kong_defaults.lua).
func TestLargeUploadIsBuffered(t *testing.T) {
	up, got := countingUpstream(t)
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute(idA, "s1", paths("/"))})
	tmp := t.TempDir()
	s := startProxyWith(t, snap, func(c *Config) { c.BodyTempDir = tmp })
	const size = 70 << 20
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			body := newPatternReader(size)
			req, err := http.NewRequest("POST", "http://"+s.Addr().String()+"/upload", io.Reader(body))
			if err != nil {
				t.Fatal(err)
			}
			if !chunked {
				req.ContentLength = size
			}
			before := heapInUse()
			var peak atomic.Int64
			stop := make(chan struct{})
			go watchHeap(before, &peak, stop)
			resp, err := http.DefaultClient.Do(req)
			close(stop)
			if err != nil {
				t.Fatalf("post: %v", err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(answer) != "stored" {
				t.Fatalf("got %d %q, want 200 \"stored\"", resp.StatusCode, answer)
			}
			r := <-got
			want := hex.EncodeToString(body.sum.Sum(nil))
			if r.bytes != size || r.sha256 != want {
				t.Errorf("upstream got %d bytes (sha256 %s), want %d (%s)", r.bytes, r.sha256, size, want)
			}
			if r.length != size || r.transferEncoding != "" {
				t.Errorf("upstream got Content-Length %d, Transfer-Encoding %q; want %d and none", r.length, r.transferEncoding, size)
			}
			if p := peak.Load(); p > 24<<20 {
				t.Errorf("heap grew by %d MiB while %d MiB passed, want far less than the body", p>>20, size>>20)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("temporary files left behind: %d", len(left))
			}
		})
	}
}

// watchHeap records the largest heap growth over before until stop closes.
func watchHeap(before int64, peak *atomic.Int64, stop <-chan struct{}) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if grown := heapInUse() - before; grown > peak.Load() {
				peak.Store(grown)
			}
		}
	}
}

// With request_buffering off the body goes upstream as it arrives, with
// the client's framing (nginx's proxy_request_buffering off, set from the
// route by kong/templates/nginx_kong.lua's @unbuffered locations): the
// upstream has the first piece while the client still holds the rest.
func TestUnbufferedUploadStreams(t *testing.T) {
	firstPiece := make(chan string, 1)
	got := make(chan received, 1)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, first); err != nil {
			return
		}
		firstPiece <- string(first)
		rest, _ := io.ReadAll(r.Body)
		got <- received{length: r.ContentLength, transferEncoding: strings.Join(r.TransferEncoding, ","), bytes: int64(5 + len(rest))}
		io.WriteString(w, "stored "+string(first)+string(rest))
	})
	noBuffering := func(r *entity.Route) { r.RequestBuffering = false }
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute(idA, "s1", paths("/"), noBuffering)})
	s := startProxy(t, snap)

	tests := []struct {
		name        string
		head        string
		first, rest string
		wantLength  int64
		wantTE      string
	}{
		{"declared length", "Content-Length: 11\r\n", "hello", " world", 11, ""},
		{"chunked", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n", "6\r\n world\r\n0\r\n\r\n", -1, "chunked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /up HTTP/1.1\r\nHost: x\r\n%s\r\n%s", tt.head, tt.first)
			select {
			case piece := <-firstPiece:
				if piece != "hello" {
					t.Fatalf("upstream's first piece %q, want \"hello\"", piece)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream got nothing before the body ended")
			}
			io.WriteString(conn, tt.rest)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(answer) != "stored hello world" {
				t.Errorf("got %d %q, want 200 \"stored hello world\"", resp.StatusCode, answer)
			}
			r := <-got
			if r.length != tt.wantLength || r.transferEncoding != tt.wantTE || r.bytes != 11 {
				t.Errorf("upstream got length %d, TE %q, %d bytes; want %d, %q, 11", r.length, r.transferEncoding, r.bytes, tt.wantLength, tt.wantTE)
			}
		})
	}
}

// A streamed upload the client stops sending, or that grows past the
// limit, gets nginx's answer (408, 413), not a 502, and the half-sent
// request's upstream connection is closed rather than reused.
func TestUnbufferedUploadClientFailures(t *testing.T) {
	up, _ := countingUpstream(t)
	noBuffering := func(r *entity.Route) { r.RequestBuffering = false }
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute(idA, "s1", paths("/"), noBuffering)})
	s := startProxyWith(t, snap, func(c *Config) {
		c.ClientBodyTimeout = 300 * time.Millisecond
		c.MaxBodySize = 1000
	})
	tests := []struct {
		name       string
		request    string
		wantStatus int
	}{
		{"stops sending", "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b", 408},
		{"chunked past the limit", "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"258\r\n" + strings.Repeat("a", 600) + "\r\n258\r\n" + strings.Repeat("b", 600) + "\r\n", 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			io.WriteString(conn, tt.request)
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus || !resp.Close {
				t.Errorf("got %d (close %v), want %d and the connection closed", resp.StatusCode, resp.Close, tt.wantStatus)
			}
		})
	}
	if status, _, _ := send(t, s, "GET", "/after", nil); status != 200 {
		t.Errorf("a request after them got %d, want 200", status)
	}
}

// A body spooled to a file is sent whole on every try, so a retry after a
// failed one repeats it exactly.
func TestSpooledBodyIsSentWholeEachTime(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	content := strings.Repeat("spooled body ", 10000)
	io.WriteString(f, content)
	b := requestBody{file: f, size: int64(len(content)), buf: make([]byte, 0, 4096)}
	defer b.reset()
	for try := 1; try <= 2; try++ {
		server, client := net.Pipe()
		done := make(chan string)
		go func() {
			all, _ := io.ReadAll(server)
			done <- string(all)
		}()
		if err := b.writeTo(client, time.Second); err != nil {
			t.Fatalf("try %d: %v", try, err)
		}
		client.Close()
		if sent := <-done; sent != content {
			t.Errorf("try %d sent %d bytes, want %d", try, len(sent), len(content))
		}
	}
	if !b.replayable() {
		t.Error("a spooled body is not replayable, want it to be")
	}
}
