package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/testutil"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// Upstream and target tests use real upstream servers on 127.0.40.x.

const upID = "00000000-0000-4000-8000-0000000000a1"

// target is a real upstream server on a loopback address, answering with
// its own address unless fail says it should answer 500.
type target struct {
	*httptest.Server
	hits atomic.Int64
	fail atomic.Bool
	host atomic.Value // the Host it last saw
}

func startTarget(t *testing.T, ip string) *target {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen %s: %v", ip, err)
	}
	return serveTarget(t, ln)
}

// serveTarget serves a target on ln.
func serveTarget(t *testing.T, ln net.Listener) *target {
	tg := &target{}
	tg.Server = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.host.Store(r.Host)
		if r.URL.Path == "/health" {
			if tg.fail.Load() {
				w.WriteHeader(500)
			}
			return
		}
		tg.hits.Add(1)
		if tg.fail.Load() {
			w.WriteHeader(500)
		}
		io.WriteString(w, ln.Addr().String())
	})}}
	tg.Start()
	t.Cleanup(tg.Close)
	return tg
}

func (tg *target) addr() string { return tg.Listener.Addr().String() }

// deadAddr is an address on ip where nothing listens.
func deadAddr(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func testUpstreamEntity(name, algorithm, healthchecks string, opts ...func(*entity.Upstream)) entity.Upstream {
	u := entity.Upstream{ID: upID, Name: name, Algorithm: algorithm, HashOn: "none", HashFallback: "none",
		HashOnCookiePath: "/", Slots: 10000}
	if healthchecks != "" {
		if err := json.Unmarshal([]byte(healthchecks), &u.Healthchecks); err != nil {
			panic(err)
		}
	}
	for _, o := range opts {
		o(&u)
	}
	return u
}

func testTargetEntity(id, addr string, weight int) entity.Target {
	return entity.Target{ID: id, Upstream: &entity.ForeignKey{ID: upID}, Target: addr, Weight: weight}
}

// balancedProxy serves /b through a service whose host is the upstream
// "backend.test", with retries.
func balancedProxy(t *testing.T, u entity.Upstream, retries int, ts ...entity.Target) *Server {
	t.Helper()
	svc := testService(t, idA, "backend.test:80", func(s *entity.Service) { s.Retries = retries })
	snap, warnings := NewSnapshot(SnapshotInput{
		Services:  []entity.Service{svc},
		Routes:    []entity.Route{testRoute(idB, idA, paths("/b"))},
		Upstreams: []entity.Upstream{u},
		Targets:   ts,
	})
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	return startProxy(t, snap)
}

func targetIDs(n int) string {
	return "00000000-0000-4000-8000-00000000b0" + string(rune('0'+n/10)) + string(rune('0'+n%10))
}

// A service whose host names an upstream is balanced over its targets by
// weight, with the target's host and port as Host (Kong's
// set_host_header); a target of weight 0 gets nothing.
func TestBalancedRoundRobin(t *testing.T) {
	a, b, c := startTarget(t, "127.0.40.1"), startTarget(t, "127.0.40.2"), startTarget(t, "127.0.40.3")
	s := balancedProxy(t, testUpstreamEntity("backend.test", "round-robin", ""), 5,
		testTargetEntity(targetIDs(1), a.addr(), 100),
		testTargetEntity(targetIDs(2), b.addr(), 50),
		testTargetEntity(targetIDs(3), c.addr(), 0))
	const n = 300
	for range n {
		if status, _, body := send(t, s, "GET", "/b", nil); status != 200 {
			t.Fatalf("got %d %q, want 200", status, body)
		}
	}
	if got, want := a.hits.Load(), int64(n*2/3); got < want-6 || got > want+6 {
		t.Errorf("weight 100: got %d requests, want about %d", got, want)
	}
	if got := c.hits.Load(); got != 0 {
		t.Errorf("weight 0: got %d requests, want 0", got)
	}
	if got := a.host.Load(); got != a.addr() {
		t.Errorf("Host upstream: got %v, want %s", got, a.addr())
	}
}

// With no target to pick, the proxy answers 503 with Kong's message
// (kong/runloop/balancer/init.lua execute, handler.lua).
func TestBalancedNoPeers(t *testing.T) {
	tests := []struct {
		name    string
		targets []entity.Target
	}{
		{"no targets", nil},
		{"all weight 0", []entity.Target{testTargetEntity(targetIDs(1), "127.0.40.1:8000", 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := balancedProxy(t, testUpstreamEntity("backend.test", "round-robin", ""), 5, tt.targets...)
			status, _, body := send(t, s, "GET", "/b", nil)
			if status != 503 || !strings.Contains(body, `"message":"failure to get a peer from the ring-balancer"`) {
				t.Errorf("got %d %s, want 503 with Kong's message", status, body)
			}
		})
	}
}

// A connection failure moves the request to the next target (the
// service's retries); with retries 0 it is answered 502.
func TestBalancedRetriesMoveToTheNextTarget(t *testing.T) {
	live := startTarget(t, "127.0.40.4")
	dead := deadAddr(t, "127.0.40.5")
	targets := []entity.Target{testTargetEntity(targetIDs(1), live.addr(), 100), testTargetEntity(targetIDs(2), dead, 100)}
	s := balancedProxy(t, testUpstreamEntity("backend.test", "round-robin", ""), 1, targets...)
	for range 20 {
		if status, _, body := send(t, s, "GET", "/b", nil); status != 200 {
			t.Fatalf("retries 1: got %d %q, want 200", status, body)
		}
	}
	s0 := balancedProxy(t, testUpstreamEntity("backend.test", "round-robin", ""), 0, targets...)
	failed := 0
	for range 20 {
		if status, _, _ := send(t, s0, "GET", "/b", nil); status == 502 {
			failed++
		}
	}
	if failed != 10 {
		t.Errorf("retries 0: got %d of 20 failed, want 10 (every other to the dead target)", failed)
	}
}

// A try whose answer had begun is not repeated on another target, even
// for GET (nginx's proxy_next_upstream stops once the header is read).
func TestBalancedNoRetryAfterTheAnswerBegan(t *testing.T) {
	var tries atomic.Int64
	half := func(ip string) string {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				tries.Add(1)
				buf := make([]byte, 4096)
				c.Read(buf) //nolint:errcheck // the request, whatever it is
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	s := balancedProxy(t, testUpstreamEntity("backend.test", "round-robin", ""), 5,
		testTargetEntity(targetIDs(1), half("127.0.40.6"), 100), testTargetEntity(targetIDs(2), half("127.0.40.7"), 100))
	if status, _, _ := send(t, s, "GET", "/b", nil); status != 502 {
		t.Errorf("got %d, want 502", status)
	}
	if got := tries.Load(); got != 1 {
		t.Errorf("got %d tries, want 1", got)
	}
}

// Consistent hashing on a header sends a key to the same target every
// time; hashing on a cookie the client lacks sets it (Kong's set_cookie).
func TestBalancedConsistentHashing(t *testing.T) {
	ts := []*target{startTarget(t, "127.0.40.8"), startTarget(t, "127.0.40.9"), startTarget(t, "127.0.40.10")}
	var es []entity.Target
	for i, tg := range ts {
		es = append(es, testTargetEntity(targetIDs(i+1), tg.addr(), 100))
	}
	header := func(u *entity.Upstream) { u.HashOn, u.HashOnHeader = "header", ptr("X-User") }
	s := balancedProxy(t, testUpstreamEntity("backend.test", "consistent-hashing", "", header), 5, es...)
	spread := map[string]bool{}
	for k := range 30 {
		user := "user-" + string(rune('a'+k))
		_, _, first := send(t, s, "GET", "/b", map[string]string{"X-User": user})
		for range 3 {
			if _, _, again := send(t, s, "GET", "/b", map[string]string{"X-User": user}); again != first {
				t.Fatalf("key %s: got %s then %s, want the same target", user, first, again)
			}
		}
		spread[first] = true
	}
	if len(spread) != 3 {
		t.Errorf("30 keys reached %d targets, want 3", len(spread))
	}

	cookie := func(u *entity.Upstream) {
		u.HashOn, u.HashOnCookie, u.HashOnCookiePath = "cookie", ptr("sticky"), "/app"
	}
	s = balancedProxy(t, testUpstreamEntity("backend.test", "consistent-hashing", "", cookie), 5, es...)
	_, h, _ := send(t, s, "GET", "/b", nil)
	set := h.Get("Set-Cookie")
	if !strings.HasPrefix(set, "sticky=") || !strings.HasSuffix(set, "; Path=/app; Same-Site=Lax; HttpOnly") {
		t.Fatalf("Set-Cookie: got %q, want sticky=…; Path=/app; Same-Site=Lax; HttpOnly", set)
	}
	value := strings.TrimPrefix(strings.SplitN(set, ";", 2)[0], "sticky=")
	_, h, first := send(t, s, "GET", "/b", map[string]string{"Cookie": "sticky=" + value})
	if h.Get("Set-Cookie") != "" {
		t.Errorf("got Set-Cookie %q with the cookie sent, want none", h.Get("Set-Cookie"))
	}
	for range 5 {
		if _, _, again := send(t, s, "GET", "/b", map[string]string{"Cookie": "sticky=" + value}); again != first {
			t.Fatalf("cookie: got %s then %s, want the same target", first, again)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// Passive checks: a target answering 500 (in passive.unhealthy's
// statuses) http_failures times gets no more traffic; when every target
// is out the proxy answers 503.
func TestBalancedPassiveHealth(t *testing.T) {
	good, bad := startTarget(t, "127.0.40.11"), startTarget(t, "127.0.40.12")
	bad.fail.Store(true)
	checks := `{"passive":{"healthy":{"http_statuses":[200],"successes":1},"unhealthy":{"http_statuses":[500],"http_failures":2,"tcp_failures":1,"timeouts":1}}}`
	s := balancedProxy(t, testUpstreamEntity("backend.test", "round-robin", checks), 0,
		testTargetEntity(targetIDs(1), good.addr(), 100), testTargetEntity(targetIDs(2), bad.addr(), 100))
	for range 20 {
		send(t, s, "GET", "/b", nil)
	}
	if got := bad.hits.Load(); got != 2 {
		t.Errorf("failing target: got %d requests, want 2 (the unhealthy threshold)", got)
	}
	good.fail.Store(true)
	for range 2 {
		send(t, s, "GET", "/b", nil)
	}
	status, _, body := send(t, s, "GET", "/b", nil)
	if status != 503 || !strings.Contains(body, "failure to get a peer from the ring-balancer") {
		t.Errorf("all unhealthy: got %d %s, want 503", status, body)
	}
}

// Active checks take a target whose probe fails out of rotation and put
// it back within an interval of recovering.
func TestBalancedActiveHealth(t *testing.T) {
	a, b := startTarget(t, "127.0.40.13"), startTarget(t, "127.0.40.14")
	checks := `{"active":{"type":"http","http_path":"/health","timeout":1,"concurrency":2,` +
		`"healthy":{"interval":0.05,"http_statuses":[200],"successes":1},` +
		`"unhealthy":{"interval":0.05,"http_statuses":[500],"http_failures":1,"tcp_failures":1,"timeouts":1}}}`
	s := balancedProxy(t, testUpstreamEntity("backend.test", "round-robin", checks), 0,
		testTargetEntity(targetIDs(1), a.addr(), 100), testTargetEntity(targetIDs(2), b.addr(), 100))
	b.fail.Store(true)
	health := func(want string) func() error {
		return func() error {
			th, _, _ := s.Balancers().Health(upID)
			if got := th[b.addr()].Summary(); got != want {
				return fmt.Errorf("target health: got %s, want %s", got, want)
			}
			return nil
		}
	}
	testutil.Eventually(t, 5*time.Second, health("UNHEALTHY"))
	before := b.hits.Load()
	for range 10 {
		if status, _, _ := send(t, s, "GET", "/b", nil); status != 200 {
			t.Fatalf("got %d, want 200 from the healthy target", status)
		}
	}
	if got := b.hits.Load() - before; got != 0 {
		t.Errorf("unhealthy target: got %d requests, want 0", got)
	}
	b.fail.Store(false)
	testutil.Eventually(t, 5*time.Second, health("HEALTHY"))
}

// A target change rebuilds only its upstream's balancer: services and
// routes stay as they were, and the addresses it keeps keep their health
// (state kept by upstream id outside the snapshot).
func TestTargetChangeRebuildsOnlyItsBalancer(t *testing.T) {
	a, b := startTarget(t, "127.0.40.15"), startTarget(t, "127.0.40.16")
	checks := `{"passive":{"healthy":{"http_statuses":[200],"successes":0},"unhealthy":{"http_statuses":[500],"http_failures":1}}}`
	builder := NewBuilder()
	builder.Apply(SnapshotChange{Put: SnapshotInput{
		Services:  []entity.Service{testService(t, idA, "backend.test:80", func(s *entity.Service) { s.Retries = 0 })},
		Routes:    []entity.Route{testRoute(idB, idA, paths("/b"))},
		Upstreams: []entity.Upstream{testUpstreamEntity("backend.test", "round-robin", checks)},
		Targets:   []entity.Target{testTargetEntity(targetIDs(1), a.addr(), 100)},
	}})
	first := builder.Snapshot()
	s := startProxy(t, first)
	a.fail.Store(true)
	send(t, s, "GET", "/b", nil) // a is now unhealthy

	builder.Apply(SnapshotChange{Put: SnapshotInput{Targets: []entity.Target{testTargetEntity(targetIDs(2), b.addr(), 100)}}})
	second := builder.Snapshot()
	if first.services[0] != second.services[0] {
		t.Errorf("service: got a new one, want the same")
	}
	if first.balancers[0] == second.balancers[0] {
		t.Errorf("balancer: got the same, want a rebuilt one")
	}
	s.Swap(second)
	for range 5 {
		if status, _, body := send(t, s, "GET", "/b", nil); status != 200 || body != b.addr() {
			t.Fatalf("got %d %q, want 200 from %s (%s stays unhealthy)", status, body, b.addr(), a.addr())
		}
	}
}

// BenchmarkProxyInMemoryBalanced is BenchmarkProxyInMemory through a
// 4-target upstream: round-robin, and consistent hashing on a header.
func BenchmarkProxyInMemoryBalanced(b *testing.B) {
	for _, alg := range []string{"round-robin", "consistent-hashing"} {
		b.Run(alg, func(b *testing.B) {
			s := New(DefaultConfig())
			s.pool.dial = func(clientKey) dialFunc {
				return func() (net.Conn, error) {
					return &memUpstreamConn{response: []byte(benchUpstreamResponse)}, nil
				}
			}
			u := testUpstreamEntity("backend.test", alg, "")
			if alg == "consistent-hashing" {
				u.HashOn, u.HashOnHeader = "header", ptr("User-Agent")
			}
			var ts []entity.Target
			for i := 1; i <= 4; i++ {
				ts = append(ts, testTargetEntity(targetIDs(i), "127.0.40."+string(rune('0'+i))+":9", 100))
			}
			snap, _ := NewSnapshot(SnapshotInput{
				Services:  []entity.Service{testService(b, "s1", "backend.test:80")},
				Routes:    []entity.Route{testRoute(idA, "s1", paths("/"), noStrip)},
				Upstreams: []entity.Upstream{u}, Targets: ts,
			})
			s.Swap(snap)
			b.Cleanup(func() { s.registry.Close() })
			srv := s.newFastHTTPServer()
			client := &memClientConn{request: []byte(benchClientRequest), left: b.N}
			b.ReportAllocs()
			b.ResetTimer()
			if err := srv.ServeConn(client); err != nil {
				b.Fatalf("serve: %v", err)
			}
			b.StopTimer()
			if client.responses != b.N || !bytes.HasPrefix(client.first, []byte("HTTP/1.1 200 OK\r\n")) {
				b.Fatalf("got %d responses, the first %q; want %d of 200", client.responses, client.first, b.N)
			}
		})
	}
}

// A target killed under load costs at most the passive checks' unhealthy
// threshold plus the requests in flight at that moment, then nothing: the
// dead target is out of rotation (no retries here, so every failure
// reaches a client). kong/runloop/balancer/healthcheckers.lua counts
// tcp_failures from real traffic the same way.
func TestBalancedTargetKilledUnderLoad(t *testing.T) {
	a, b, c := startTarget(t, "127.0.40.21"), startTarget(t, "127.0.40.22"), startTarget(t, "127.0.40.23")
	const threshold, clients = 2, 8
	checks := fmt.Sprintf(`{"passive":{"healthy":{"http_statuses":[200],"successes":0},`+
		`"unhealthy":{"http_statuses":[500],"http_failures":1,"tcp_failures":%d,"timeouts":1}}}`, threshold)
	s := balancedProxy(t, testUpstreamEntity("backend.test", "round-robin", checks), 0,
		testTargetEntity(targetIDs(1), a.addr(), 100), testTargetEntity(targetIDs(2), b.addr(), 100),
		testTargetEntity(targetIDs(3), c.addr(), 100))
	var sent, failed atomic.Int64
	var afterKill atomic.Bool
	var failedLate atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	for range clients {
		go func() {
			defer func() { done <- struct{}{} }()
			client := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				late := afterKill.Load()
				resp, err := client.Get("http://" + s.Addr().String() + "/b")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					if late {
						failedLate.Add(1)
					}
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	b.CloseClientConnections()
	b.Listener.Close() // killed: connections refused from now on
	time.Sleep(500 * time.Millisecond)
	afterKill.Store(true) // the threshold has long been reached
	time.Sleep(500 * time.Millisecond)
	close(stop)
	for range clients {
		<-done
	}
	if n := failed.Load(); n > threshold+clients {
		t.Errorf("%d of %d requests failed, want at most the threshold (%d) plus those in flight (%d)", n, sent.Load(), threshold, clients)
	}
	if n := failedLate.Load(); n != 0 {
		t.Errorf("%d requests failed once the target was out of rotation, want none", n)
	}
	th, _, _ := s.Balancers().Health(upID)
	if got := th[b.addr()].Summary(); got != "UNHEALTHY" {
		t.Errorf("the killed target's health: got %s, want UNHEALTHY", got)
	}
	t.Logf("%d requests, %d failed", sent.Load(), failed.Load())
}

// authBalancedProxy proxies route /b through upstream u over targets (each
// of weight 100), with the plugin auth on it.
func authBalancedProxy(t *testing.T, u entity.Upstream, targets []*target, auth PluginInstance) *Server {
	t.Helper()
	var ts []entity.Target
	for i, tg := range targets {
		ts = append(ts, testTargetEntity(targetIDs(i+1), tg.addr(), 100))
	}
	snap, warnings := NewSnapshot(SnapshotInput{
		Services:  []entity.Service{testService(t, idA, "backend.test:80")},
		Routes:    []entity.Route{testRoute(idB, idA, paths("/b"))},
		Upstreams: []entity.Upstream{u},
		Targets:   ts,
		Plugins:   []PluginInstance{auth},
	})
	if len(warnings) > 0 {
		t.Fatal(warnings)
	}
	s := startProxy(t, snap)
	return s
}

// hash_on consumer hashes the consumer an authentication plugin
// identified (kong/runloop/balancer/init.lua get_value_to_hash): each
// consumer sticks to one target; without one, the fallback (the client
// IP here) is used.
func TestBalancedHashOnConsumer(t *testing.T) {
	targets := []*target{startTarget(t, "127.0.40.31"), startTarget(t, "127.0.40.32"), startTarget(t, "127.0.40.33")}
	u := testUpstreamEntity("backend.test", "consistent-hashing", "", func(u *entity.Upstream) {
		u.HashOn, u.HashFallback = "consumer", "ip"
	})
	auth := PluginInstance{ID: "auth", Name: "auth", Priority: 1000}
	auth.Hooks[PhaseAccess] = func(x pdk.Exchange) {
		if who, _ := x.Header("X-Who"); len(who) > 0 {
			x.Authenticate(&pdk.Consumer{ID: string(who)}, nil)
		}
	}
	s := authBalancedProxy(t, u, targets, auth)
	servedBy := func(who string) map[string]bool {
		seen := map[string]bool{}
		for range 10 {
			status, _, body := send(t, s, "GET", "/b", map[string]string{"X-Who": who})
			if status != 200 {
				t.Fatalf("got %d %s", status, body)
			}
			seen[body] = true
		}
		return seen
	}
	distinct := map[string]bool{}
	for i := range 12 {
		seen := servedBy("consumer-" + strconv.Itoa(i))
		if len(seen) != 1 {
			t.Fatalf("consumer-%d was served by %d targets, want one", i, len(seen))
		}
		for addr := range seen {
			distinct[addr] = true
		}
	}
	if len(distinct) < 2 {
		t.Errorf("12 consumers all hashed to %v, want them spread", distinct)
	}
	if seen := servedBy(""); len(seen) != 1 {
		t.Errorf("without a consumer (fallback ip, one client) served by %d targets, want one", len(seen))
	}
}
