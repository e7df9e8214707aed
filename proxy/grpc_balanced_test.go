package proxy

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/testutil"
	"github.com/grapevine-gw/grapevine/proxy/grpcup"
)

// gRPC through upstreams and timeouts: real gRPC servers on 127.0.51.x
// behind a real proxy, called by a real gRPC client.

// grpcTarget is a gRPC server counting its calls; Check on the service
// "slow" waits for the call's end (the client's deadline, a reset
// stream) or 5s, and records how it ended.
type grpcTarget struct {
	*health.Server
	addr      string
	calls     atomic.Int64
	authority atomic.Value // the :authority of the last call
	deadline  atomic.Bool  // the last call had a deadline (the client's grpc-timeout)
	cancelled atomic.Int64 // slow calls ended by their context
}

func (g *grpcTarget) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	g.calls.Add(1)
	md, _ := metadata.FromIncomingContext(ctx)
	g.authority.Store(first(md.Get(":authority")))
	_, ok := ctx.Deadline()
	g.deadline.Store(ok)
	if req.GetService() == "slow" {
		select {
		case <-ctx.Done():
			g.cancelled.Add(1)
			return nil, ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
	return g.Server.Check(ctx, req)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// reaches checks that v has reached want.
func reaches(v *atomic.Int64, want int64, what string) func() error {
	return func() error {
		if got := v.Load(); got < want {
			return fmt.Errorf("%s: got %d, want %d", what, got, want)
		}
		return nil
	}
}

func startGRPCTarget(t *testing.T, ip string) *grpcTarget {
	t.Helper()
	g := &grpcTarget{Server: health.NewServer()}
	g.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	g.SetServingStatus("slow", healthpb.HealthCheckResponse_SERVING)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, g)
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen %s: %v", ip, err)
	}
	g.addr = ln.Addr().String()
	go srv.Serve(ln) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	return g
}

// grpcBalancedProxy serves the grpc route "grpc.test" through a grpc
// service whose host is the upstream "grpc.backend".
func grpcBalancedProxy(t *testing.T, u entity.Upstream, retries int, ts ...entity.Target) *Server {
	t.Helper()
	svc := testService(t, idA, "grpc.backend:80", func(s *entity.Service) { s.Protocol, s.Retries = "grpc", retries })
	snap, warnings := NewSnapshot(SnapshotInput{
		Services:  []entity.Service{svc},
		Routes:    []entity.Route{grpcRoute(idB, idA, "grpc.test", "grpc", "grpcs")},
		Upstreams: []entity.Upstream{u},
		Targets:   ts,
	})
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	return startProxyWith(t, snap, func(c *Config) { c.Listen = "127.0.0.1:0 http2" })
}

// h2cHealth is a gRPC client of the proxy's plain listener (h2c).
func h2cHealth(t *testing.T, s *Server, authority string) healthpb.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+s.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority))
	if err != nil {
		t.Fatalf("grpc client: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func check(ctx context.Context, c healthpb.HealthClient, service string) *status.Status {
	_, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return status.Convert(err)
}

// TestGRPCBalanced: a grpc service whose host is an upstream is balanced
// round-robin over its targets, each getting its own host as :authority
// (kong/runloop/balancer/init.lua set_host_header, set_authority); a
// target that refuses connections is retried on the next one within the
// service's retries, and without retries fails the call as Kong's error
// handler does for a 502 (kong/error_handlers.lua, kong/pdk/response.lua
// HTTP_TO_GRPC_STATUS: Internal); the passive checks count that failure
// and take the target out.
func TestGRPCBalanced(t *testing.T) {
	a, b := startGRPCTarget(t, "127.0.51.1"), startGRPCTarget(t, "127.0.51.2")
	dead := deadAddr(t, "127.0.51.3")
	targets := []entity.Target{testTargetEntity(targetIDs(1), a.addr, 100), testTargetEntity(targetIDs(2), b.addr, 100),
		testTargetEntity(targetIDs(3), dead, 100)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("round-robin with retries", func(t *testing.T) {
		a.calls.Store(0)
		b.calls.Store(0)
		c := h2cHealth(t, grpcBalancedProxy(t, testUpstreamEntity("grpc.backend", "round-robin", ""), 2, targets...), "grpc.test")
		const n = 30
		for i := range n {
			if st := check(ctx, c, "svc"); st.Code() != codes.OK {
				t.Fatalf("call %d: got %v %q, want OK", i, st.Code(), st.Message())
			}
		}
		if got := a.calls.Load() + b.calls.Load(); got != n {
			t.Fatalf("got %d calls upstream, want %d", got, n)
		}
		if got := a.calls.Load(); got < n/2-3 || got > n/2+3 {
			t.Errorf("target a: got %d of %d calls, want about half", got, n)
		}
		if got := a.authority.Load(); got != a.addr {
			t.Errorf(":authority: got %v, want %s", got, a.addr)
		}
	})
	t.Run("no retries, passive health", func(t *testing.T) {
		checks := `{"passive":{"unhealthy":{"tcp_failures":1,"http_failures":0,"timeouts":0}}}`
		c := h2cHealth(t, grpcBalancedProxy(t, testUpstreamEntity("grpc.backend", "round-robin", checks), 0, targets...), "grpc.test")
		failed := 0
		for range 12 {
			st := check(ctx, c, "svc")
			switch {
			case st.Code() == codes.OK:
			case st.Code() == codes.Internal && st.Message() == msgBadResponse:
				failed++
			default:
				t.Fatalf("got %v %q, want OK or Internal %q", st.Code(), st.Message(), msgBadResponse)
			}
		}
		if failed != 1 {
			t.Errorf("got %d failed calls, want 1 (the dead target is out after its first tcp failure)", failed)
		}
	})
	t.Run("every target down", func(t *testing.T) {
		one := []entity.Target{testTargetEntity(targetIDs(3), dead, 100)}
		c := h2cHealth(t, grpcBalancedProxy(t, testUpstreamEntity("grpc.backend", "round-robin", ""), 3, one...), "grpc.test")
		// Every try fails to connect: the last failure is nginx's 502.
		if st := check(ctx, c, "svc"); st.Code() != codes.Internal || st.Message() != msgBadResponse {
			t.Fatalf("got %v %q, want Internal %q", st.Code(), st.Message(), msgBadResponse)
		}
	})
}

// TestGRPCTimeouts: the service's read_timeout bounds the wait for a
// gRPC upstream, answered as nginx's 504 through Kong's error handler
// (DeadlineExceeded, "The upstream server is timing out"); the client's
// grpc-timeout reaches the upstream untouched (nginx's grpc_pass passes
// it on, Kong does not read it), and a client that gives up cancels the
// call upstream.
func TestGRPCTimeouts(t *testing.T) {
	g := startGRPCTarget(t, "127.0.51.4")
	svc := testService(t, idA, g.addr, func(s *entity.Service) { s.Protocol, s.Retries, s.ReadTimeout = "grpc", 0, 300 })
	snap := mustSnapshot(t, []entity.Service{svc}, []entity.Route{grpcRoute(idB, idA, "grpc.test", "grpc", "grpcs")})
	c := h2cHealth(t, startProxyWith(t, snap, func(c *Config) { c.Listen = "127.0.0.1:0 http2" }), "grpc.test")

	t.Run("read_timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if st := check(ctx, c, "slow"); st.Code() != codes.DeadlineExceeded || st.Message() != msgTimeout {
			t.Fatalf("got %v %q, want DeadlineExceeded %q", st.Code(), st.Message(), msgTimeout)
		}
		testutil.Eventually(t, 5*time.Second, reaches(&g.cancelled, 1, "cancelled slow calls upstream"))
	})
	t.Run("client deadline", func(t *testing.T) {
		g.cancelled.Store(0)
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		if st := check(ctx, c, "slow"); st.Code() != codes.DeadlineExceeded {
			t.Fatalf("got %v %q, want DeadlineExceeded", st.Code(), st.Message())
		}
		if !g.deadline.Load() {
			t.Errorf("upstream call got no deadline, want the client's grpc-timeout")
		}
		testutil.Eventually(t, 5*time.Second, reaches(&g.cancelled, 1, "cancelled slow calls upstream"))
	})
	t.Run("client cancels", func(t *testing.T) {
		// No deadline: only the client's reset stream can end the call
		// upstream before the read timeout.
		svc.ReadTimeout = 60000
		c := h2cHealth(t, startProxyWith(t, mustSnapshot(t, []entity.Service{svc},
			[]entity.Route{grpcRoute(idB, idA, "grpc.test", "grpc", "grpcs")}), func(c *Config) { c.Listen = "127.0.0.1:0 http2" }), "grpc.test")
		g.cancelled.Store(0)
		calls := g.calls.Load()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan *status.Status, 1)
		go func() { done <- check(ctx, c, "slow") }()
		testutil.Eventually(t, 5*time.Second, reaches(&g.calls, calls+1, "calls upstream"))
		cancel()
		if st := <-done; st.Code() != codes.Canceled {
			t.Fatalf("got %v %q, want Canceled", st.Code(), st.Message())
		}
		testutil.Eventually(t, 3*time.Second, reaches(&g.cancelled, 1, "cancelled slow calls upstream"))
	})
}

// TestGRPCConnectTimeout: a grpc service whose upstream never completes
// a connection (a listener whose accept queue is full drops the SYNs)
// fails within its connect_timeout, not the 60 s default, as Kong's
// balancer sets it (kong/runloop/handler.lua: connect_timeout of the
// service; kong/init.lua balancer: set_timeouts), answered as nginx's
// 504 through Kong's error handler (kong/error_handlers.lua: "The
// upstream server is timing out"; kong/pdk/response.lua
// HTTP_TO_GRPC_STATUS[504] = 4, DeadlineExceeded).
func TestGRPCConnectTimeout(t *testing.T) {
	addr := blackholedAddr(t, "127.0.51.6")
	svc := testService(t, idA, addr, func(s *entity.Service) { s.Protocol, s.Retries, s.ConnectTimeout = "grpc", 0, 300 })
	snap := mustSnapshot(t, []entity.Service{svc}, []entity.Route{grpcRoute(idB, idA, "grpc.test", "grpc", "grpcs")})
	c := h2cHealth(t, startProxyWith(t, snap, func(c *Config) { c.Listen = "127.0.0.1:0 http2" }), "grpc.test")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	st := check(ctx, c, "svc")
	if st.Code() != codes.DeadlineExceeded || st.Message() != msgTimeout {
		t.Fatalf("got %v %q, want DeadlineExceeded %q", st.Code(), st.Message(), msgTimeout)
	}
	// Generous: only a wait of the default 60 s (or the client's 10 s) is wrong.
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v, want about the connect_timeout (300ms)", took)
	}
}

// blackholedAddr is an address on ip that takes no connection: its
// listener has a backlog of 0 and a connection already waits in its
// accept queue, which is never read, so the kernel drops further SYNs
// and a dial hangs until its own timeout.
func blackholedAddr(t *testing.T, ip string) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	sa := &syscall.SockaddrInet4{}
	copy(sa.Addr[:], net.ParseIP(ip).To4())
	if err := syscall.Bind(fd, sa); err != nil {
		t.Fatalf("bind %s: %v", ip, err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatalf("listen: %v", err)
	}
	bound, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(bound.(*syscall.SockaddrInet4).Port))
	// Fill the accept queue: dial until a dial times out.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			if !isTimeout(err) {
				t.Fatalf("filling the accept queue: %v", err)
			}
			return addr
		}
		t.Cleanup(func() { c.Close() })
		if i == 16 {
			t.Fatalf("%s still completes connections after %d dials", addr, i+1)
		}
	}
}

// TestGRPCPoolsPruned: the HTTP/2 pool of a grpc service is dropped, its
// connection to the upstream closed, when a swap changes the service's
// connection settings or removes the service; a pool no request used for
// grpcup.IdleTimeout is dropped too.
func TestGRPCPoolsPruned(t *testing.T) {
	g := &grpcTarget{Server: health.NewServer()}
	g.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, g)
	inner, err := net.Listen("tcp", "127.0.51.7:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ln := &countingListener{Listener: inner}
	go srv.Serve(ln) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)

	snapWith := func(connectMs int) *Snapshot {
		svc := testService(t, idA, inner.Addr().String(), func(s *entity.Service) { s.Protocol, s.ConnectTimeout = "grpc", connectMs })
		return mustSnapshot(t, []entity.Service{svc}, []entity.Route{grpcRoute(idB, idA, "grpc.test", "grpc", "grpcs")})
	}
	s := startProxyWith(t, snapWith(60000), func(c *Config) { c.Listen = "127.0.0.1:0 http2" })
	c := h2cHealth(t, s, "grpc.test")
	call := func(t *testing.T) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if st := check(ctx, c, "svc"); st.Code() != codes.OK {
			t.Fatalf("got %v %q, want OK", st.Code(), st.Message())
		}
	}
	upstreamConns := func(want int64) func() error {
		return func() error {
			if got := ln.open.Load(); got != want {
				return fmt.Errorf("got %d connections open at the upstream, want %d", got, want)
			}
			return nil
		}
	}
	pools := func(t *testing.T, want int) {
		t.Helper()
		if got := s.grpc.Pools(); got != want {
			t.Fatalf("got %d pools, want %d", got, want)
		}
	}

	call(t)
	pools(t, 1)
	testutil.Eventually(t, 5*time.Second, upstreamConns(1))

	t.Run("settings changed", func(t *testing.T) {
		s.Swap(snapWith(5000))
		pools(t, 0)
		testutil.Eventually(t, 5*time.Second, upstreamConns(0))
		call(t)
		pools(t, 1)
	})
	t.Run("service removed", func(t *testing.T) {
		s.Swap(EmptySnapshot())
		pools(t, 0)
		testutil.Eventually(t, 5*time.Second, upstreamConns(0))
	})
	t.Run("unused", func(t *testing.T) {
		s.Swap(snapWith(5000))
		call(t)
		keepAll := func(grpcup.Settings) bool { return true }
		if n := s.grpc.Prune(keepAll, time.Now().Add(-time.Hour)); n != 0 {
			t.Fatalf("dropped %d pools used within the hour, want 0", n)
		}
		if n := s.grpc.Prune(keepAll, time.Now().Add(time.Second)); n != 1 {
			t.Fatalf("dropped %d pools unused since a second from now, want 1", n)
		}
		testutil.Eventually(t, 5*time.Second, upstreamConns(0))
	})
}

// countingListener counts the connections it accepted that are open.
type countingListener struct {
	net.Listener
	open atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.open.Add(1)
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
