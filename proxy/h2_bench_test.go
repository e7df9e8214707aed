package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/grapevine-gw/grapevine/proxy/h2bridge"
)

// BenchmarkProxyH2InMemory is BenchmarkProxyInMemory for HTTP/2: an h2c
// client (golang.org/x/net/http2) sends GET / on streams of one
// connection through an in-memory pipe to the proxy's HTTP/2 server
// (h2bridge), whose upstream connections answer at once in memory. The
// client's own cost is in the figure; profile to see the server's share:
// go test -run - -bench ProxyH2InMemory -cpuprofile cpu.out ./proxy
func BenchmarkProxyH2InMemory(b *testing.B) {
	clientSide := serveH2InMemory(b, inMemoryServer(b))
	cc, err := (&http2.Transport{AllowHTTP: true}).NewClientConn(clientSide)
	if err != nil {
		b.Fatalf("client conn: %v", err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(8) // streams in flight on the one connection, as h2load -m
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", "http://127.0.0.1:8000/", nil)
			resp, err := cc.RoundTrip(req)
			if err != nil {
				b.Errorf("round trip: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("got %d, want 200", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkProxyH2Frames is BenchmarkProxyH2InMemory with a client that
// does little besides framing: it writes each request's HEADERS frame
// (GET /, as h2load sends it) itself and only counts the answers, so the
// figure is mostly the server's (x/net/http2, h2bridge, the handler).
// streams requests are in flight on the one connection at a time.
func BenchmarkProxyH2Frames(b *testing.B) {
	clientSide := serveH2InMemory(b, inMemoryServer(b))
	c := newFrameClient(b, clientSide)
	const streams = 8
	b.ReportAllocs()
	b.ResetTimer()
	report := reportCPU(b)
	c.run(b, b.N, streams)
	report()
}

// reportCPU starts counting the process's CPU time (user and system);
// the function it returns reports it per operation as cpu-ns/op. On a
// machine other work keeps busy, the hops between goroutines wait for a
// thread and ns/op measures that wait; cpu-ns/op does not.
func reportCPU(b *testing.B) func() {
	start := processCPU(b)
	return func() {
		b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
	}
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// frameClient is a bare HTTP/2 client on one connection.
type frameClient struct {
	mu   sync.Mutex // guards fr's writes and enc
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	next uint32 // the next stream id
}

func newFrameClient(b *testing.B, c net.Conn) *frameClient {
	fc := &frameClient{fr: http2.NewFramer(c, c), next: 1}
	fc.enc = hpack.NewEncoder(&fc.hbuf)
	fc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		b.Fatalf("preface: %v", err)
	}
	if err := fc.fr.WriteSettings(); err != nil {
		b.Fatalf("settings: %v", err)
	}
	// The answers' bodies never wait for a connection window update.
	if err := fc.fr.WriteWindowUpdate(0, 1<<30); err != nil {
		b.Fatalf("window update: %v", err)
	}
	return fc
}

// run sends n requests, at most inFlight at a time, and waits for every
// answer, failing on any that is not a 200.
func (fc *frameClient) run(b *testing.B, n, inFlight int) {
	slots := make(chan struct{}, inFlight)
	done := make(chan error, 1)
	go func() { done <- fc.readAnswers(n, slots) }()
	for range n {
		slots <- struct{}{}
		if err := fc.get(); err != nil {
			b.Fatalf("write: %v", err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func (fc *frameClient) get() error {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.hbuf.Reset()
	for _, f := range [...]hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":path", Value: "/"},
		{Name: ":scheme", Value: "https"}, {Name: ":authority", Value: "127.0.0.1:8000"},
		{Name: "user-agent", Value: "h2load nghttp2/1.52.0"}} {
		_ = fc.enc.WriteField(f)
	}
	id := fc.next
	fc.next += 2
	return fc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: fc.hbuf.Bytes(), EndStream: true, EndHeaders: true})
}

// readAnswers reads frames until n streams ended, freeing a slot for each.
func (fc *frameClient) readAnswers(n int, slots chan struct{}) error {
	for n > 0 {
		f, err := fc.fr.ReadFrame()
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if st := f.PseudoValue("status"); st != "" && st != "200" {
				return fmt.Errorf("got status %s, want 200", st)
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fc.mu.Lock()
				err = fc.fr.WriteSettingsAck()
				fc.mu.Unlock()
			}
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if f.Header().Flags.Has(http2.FlagDataEndStream) && (f.Header().Type == http2.FrameData || f.Header().Type == http2.FrameHeaders) {
			n--
			<-slots
		}
	}
	return nil
}

// serveH2InMemory serves HTTP/2 for s on one end of an in-memory pipe and
// returns the client's end, closed when the benchmark ends.
func serveH2InMemory(b *testing.B, s *Server) net.Conn {
	srv := h2bridge.New(s.handle, h2bridge.Options{ServerName: "grapevine/bench", MaxHeaderBytes: s.headerBufferSize()})
	clientSide, serverSide := net.Pipe()
	go srv.ServeConn(serverSide) //nolint:errcheck // ends when the pipe closes
	b.Cleanup(func() { clientSide.Close() })
	return clientSide
}
