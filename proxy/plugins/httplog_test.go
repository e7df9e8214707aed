package plugins

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// logReceiver is a real HTTP log server on loopback that keeps what it
// got; answer picks each request's status (nil: 200).
type logReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	bodies   [][]byte
	requests []*http.Request
	tries    int
	answer   func(try int) int
}

func newLogReceiver(t *testing.T, answer func(try int) int) *logReceiver {
	r := &logReceiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.tries++
		status := 200
		if r.answer != nil {
			status = r.answer(r.tries)
		}
		if status < 300 {
			r.bodies = append(r.bodies, body)
			r.requests = append(r.requests, req)
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *logReceiver) got() ([][]byte, []*http.Request, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...), append([]*http.Request(nil), r.requests...), r.tries
}

func (r *logReceiver) waitFor(t *testing.T, n int) ([][]byte, []*http.Request) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if bodies, _, _ := r.got(); len(bodies) < n {
			return fmt.Errorf("got %d log requests, want %d", len(bodies), n)
		}
		return nil
	})
	bodies, reqs, _ := r.got()
	return bodies, reqs
}

// TestHTTPLogRecord follows kong/plugins/http-log/handler.lua and
// kong/pdk/log.lua serialize (3.9): one JSON object per request with
// max_batch_size 1, POSTed as application/json with the configured
// headers and the URL's user info as Basic auth; the record's request
// (method, uri, url, querystring with repeated and bare arguments,
// lower-case headers with Authorization REDACTED), response, latencies,
// route, service, consumer and source.
func TestHTTPLogRecord(t *testing.T) {
	rcv := newLogReceiver(t, nil)
	h := newHarness(t)
	t.Cleanup(h.env.Close)
	endpoint := "http://user:pw@" + rcv.Listener.Addr().String() + "/logs"
	h.plugin(`{"name":"http-log","route":{"id":"` + routeID + `"},"config":{"http_endpoint":"` + endpoint + `","headers":{"X-Tag":"gw"}}}`)

	if got := h.do("GET", "/r/x?a=1&a=2&b", "", "Authorization: Bearer secret", "X-Trace: t1"); got.status != 200 {
		t.Fatalf("got %d, want 200", got.status)
	}
	bodies, reqs := rcv.waitFor(t, 1)
	req := reqs[0]
	for _, c := range []struct{ name, got, want string }{
		{"method", req.Method, "POST"},
		{"path", req.URL.Path, "/logs"},
		{"content type", req.Header.Get("Content-Type"), "application/json"},
		{"header", req.Header.Get("X-Tag"), "gw"},
		{"authorization", req.Header.Get("Authorization"), "Basic dXNlcjpwdw=="},
	} {
		if c.got != c.want {
			t.Errorf("log request %s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	var rec struct {
		Request struct {
			Method, URI, URL string
			QueryString      map[string]any `json:"querystring"`
			Headers          map[string]any
			Size             int64
		}
		Response struct {
			Status int
			Size   int64
		}
		Latencies      struct{ Kong, Proxy, Request int64 }
		Route, Service map[string]any
		ClientIP       string `json:"client_ip"`
		StartedAt      int64  `json:"started_at"`
		Source         string
		UpstreamStatus string `json:"upstream_status"`
	}
	if err := json.Unmarshal(bodies[0], &rec); err != nil {
		t.Fatalf("record %s: %v", bodies[0], err)
	}
	for _, c := range []struct {
		name string
		got  any
		want any
	}{
		{"request.method", rec.Request.Method, "GET"},
		{"request.uri", rec.Request.URI, "/r/x?a=1&a=2&b"},
		{"request.querystring", fmt.Sprint(rec.Request.QueryString), "map[a:[1 2] b:true]"},
		{"request.headers.authorization", rec.Request.Headers["authorization"], "REDACTED"},
		{"request.headers.x-trace", rec.Request.Headers["x-trace"], "t1"},
		{"response.status", rec.Response.Status, 200},
		{"route.id", rec.Route["id"], routeID},
		{"service.id", rec.Service["id"], serviceID},
		{"client_ip", rec.ClientIP, "127.0.0.1"},
		{"source", rec.Source, "upstream"},
		{"upstream_status", rec.UpstreamStatus, "200"},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if rec.Request.Size <= 0 || rec.Response.Size <= 0 || rec.Latencies.Proxy < 0 || rec.StartedAt <= 0 {
		t.Errorf("got sizes %d/%d, proxy latency %d, started_at %d: want them set", rec.Request.Size, rec.Response.Size,
			rec.Latencies.Proxy, rec.StartedAt)
	}
}

// TestHTTPLogBatchesAndRetries follows kong/tools/queue.lua: entries are
// sent as one JSON array once max_batch_size is reached, and a batch the
// server refuses is sent again (initial_retry_delay, doubling) until it
// is taken.
func TestHTTPLogBatchesAndRetries(t *testing.T) {
	rcv := newLogReceiver(t, func(try int) int {
		if try <= 2 {
			return 503
		}
		return 200
	})
	h := newHarness(t)
	t.Cleanup(h.env.Close)
	h.plugin(`{"name":"http-log","config":{"http_endpoint":"http://` + rcv.Listener.Addr().String() + `/","queue":{"max_batch_size":3,"max_coalescing_delay":60,"initial_retry_delay":0.01}}}`)
	for range 3 {
		h.do("GET", "/r", "")
	}
	bodies, _ := rcv.waitFor(t, 1)
	var batch []map[string]any
	if err := json.Unmarshal(bodies[0], &batch); err != nil {
		t.Fatalf("batch %s: %v", bodies[0], err)
	}
	if len(batch) != 3 {
		t.Errorf("got a batch of %d, want 3", len(batch))
	}
	if _, _, tries := rcv.got(); tries != 3 {
		t.Errorf("got %d tries, want 3 (two refused)", tries)
	}
}

// TestHTTPLogNeverBlocksRequests: with a log server that never answers,
// requests still complete, and the queue drops its oldest entries when
// full (max_entries) rather than wait.
func TestHTTPLogNeverBlocksRequests(t *testing.T) {
	release := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(stuck.Close)
	t.Cleanup(func() { close(release) })
	h := newHarness(t)
	t.Cleanup(h.env.Close)
	h.plugin(`{"name":"http-log","config":{"http_endpoint":"http://` + stuck.Listener.Addr().String() + `/","timeout":60000,"queue":{"max_entries":2}}}`)
	for i := range 20 {
		if got := h.do("GET", "/r", ""); got.status != 200 {
			t.Fatalf("request %d: got %d, want 200", i, got.status)
		}
	}
}
