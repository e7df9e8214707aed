package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// grpcUpstream is a real gRPC server (the standard health service, with
// "svc" serving) that records the metadata of the last call.
type grpcUpstream struct {
	addr string
	mu   sync.Mutex
	md   metadata.MD
}

func (u *grpcUpstream) last() metadata.MD {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.md
}

func startGRPCUpstream(t *testing.T, creds credentials.TransportCredentials) *grpcUpstream {
	t.Helper()
	u := &grpcUpstream{}
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		u.mu.Lock()
		u.md = md
		u.mu.Unlock()
		return h(ctx, req)
	})}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	srv := grpc.NewServer(opts...)
	hs := health.NewServer()
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	u.addr = ln.Addr().String()
	go srv.Serve(ln) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	return u
}

// grpcClient dials the proxy's TLS listener with authority as :authority.
func grpcClient(t *testing.T, addr, authority string) healthpb.HealthClient {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test certificate
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds), grpc.WithAuthority(authority))
	if err != nil {
		t.Fatalf("grpc client: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func grpcRoute(id, serviceID, host string, protocols ...string) entity.Route {
	return testRoute(id, serviceID, hosts(host), func(r *entity.Route) { r.Protocols, r.StripPath = protocols, false })
}

// TestGRPCThroughProxy: a real gRPC client reaches real gRPC servers
// through an ssl http2 listener: a grpc service over h2c and a grpcs one
// over TLS, the upstream's trailers (grpc-status, grpc-message) reaching
// the client, Kong's headers reaching the upstream, and the errors Kong
// gives gRPC and non-gRPC requests on gRPC routes
// (kong/runloop/handler.lua access; kong/pdk/response.lua, gRPC statuses;
// kong/error_handlers.lua; spec/02-integration/05-proxy/19-grpc_proxy_spec.lua).
func TestGRPCThroughProxy(t *testing.T) {
	plain := startGRPCUpstream(t, nil)
	cert := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"127.0.0.1"}})
	pair, err := tls.X509KeyPair([]byte(cert.CertPEM), []byte(cert.KeyPEM))
	if err != nil {
		t.Fatalf("key pair: %v", err)
	}
	secure := startGRPCUpstream(t, credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}}))
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()

	grpcSvc := func(id, addr, protocol string) entity.Service {
		return testService(t, id, addr, func(s *entity.Service) { s.Protocol = protocol; s.Retries = 0 })
	}
	snap := mustSnapshot(t,
		[]entity.Service{grpcSvc("s1", plain.addr, "grpc"), grpcSvc("s2", secure.addr, "grpcs"), grpcSvc("s3", deadAddr, "grpc")},
		[]entity.Route{
			grpcRoute(idA, "s1", "plain.test", "grpc", "grpcs"),
			grpcRoute(idB, "s2", "secure.test", "grpcs"),
			grpcRoute(idC, "s3", "dead.test", "grpc", "grpcs"),
		})
	s := startProxyWith(t, snap, func(c *Config) { c.Listen = "127.0.0.1:0 ssl http2, 127.0.0.1:0" })
	addr := s.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cases := []struct {
		name, authority, service string
		wantCode                 codes.Code
		wantMsg                  string
	}{
		{"grpc service", "plain.test", "svc", codes.OK, ""},
		{"grpcs service", "secure.test", "svc", codes.OK, ""},
		{"upstream status in trailers", "plain.test", "nope", codes.NotFound, "unknown service"},
		{"no route", "other.test", "svc", codes.NotFound, "NotFound"},
		{"upstream down", "dead.test", "svc", codes.Internal, msgBadResponse},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr, trl metadata.MD
			resp, err := grpcClient(t, addr, tc.authority).Check(ctx, &healthpb.HealthCheckRequest{Service: tc.service},
				grpc.Header(&hdr), grpc.Trailer(&trl))
			st := status.Convert(err)
			if st.Code() != tc.wantCode || st.Message() != tc.wantMsg {
				t.Fatalf("got %v %q, want %v %q", st.Code(), st.Message(), tc.wantCode, tc.wantMsg)
			}
			if len(hdr.Get("x-kong-request-id")) == 0 && len(trl.Get("x-kong-request-id")) == 0 {
				t.Errorf("got no X-Kong-Request-Id (headers %v, trailers %v), want one", hdr, trl)
			}
			if tc.wantCode == codes.OK && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("got %v, want SERVING", resp.GetStatus())
			}
		})
	}
	t.Run("kong headers upstream", func(t *testing.T) {
		if _, err := grpcClient(t, addr, "plain.test").Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"}); err != nil {
			t.Fatalf("check: %v", err)
		}
		md := plain.last()
		want := map[string]string{"x-forwarded-proto": "https", "x-forwarded-host": "plain.test", "x-forwarded-port": port,
			"x-real-ip": "127.0.0.1", "via": "2 grapevine/9.9.9", ":authority": plain.addr}
		for k, v := range want {
			if got := md.Get(k); len(got) != 1 || got[0] != v {
				t.Errorf("upstream got %s %q, want %q", k, got, v)
			}
		}
	})
	t.Run("h2c", func(t *testing.T) {
		plainAddr := s.Addrs()[1].Addr.String()
		dial := func(authority string) healthpb.HealthClient {
			conn, err := grpc.NewClient("passthrough:///"+plainAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority))
			if err != nil {
				t.Fatalf("grpc client: %v", err)
			}
			t.Cleanup(func() { conn.Close() })
			return healthpb.NewHealthClient(conn)
		}
		if _, err := dial("plain.test").Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"}); err != nil {
			t.Fatalf("grpc route over h2c: %v", err)
		}
		_, err := dial("secure.test").Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
		if st := status.Convert(err); st.Code() != codes.Canceled || st.Message() != "gRPC request matched gRPCs route" {
			t.Fatalf("grpcs route over h2c: got %v %q, want Canceled %q", st.Code(), st.Message(), "gRPC request matched gRPCs route")
		}
	})
	t.Run("HTTP/1.1 gRPC request", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "https://"+addr+"/grpc.health.v1.Health/Check", strings.NewReader(""))
		req.Host = "plain.test"
		req.Header.Set("Content-Type", "application/grpc")
		resp, err := h1Client("plain.test").Do(req)
		if err != nil {
			t.Fatalf("post: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 426 || resp.Header.Get("Upgrade") != "HTTP/2" {
			t.Fatalf("got %d Upgrade %q, want 426 HTTP/2", resp.StatusCode, resp.Header.Get("Upgrade"))
		}
	})
	t.Run("HTTP/2 non-gRPC request", func(t *testing.T) {
		a := do(t, h2Client("plain.test"), "POST", "https://"+addr+"/", "plain.test", "{}")
		var got struct{ Message string }
		_ = json.Unmarshal([]byte(a.body), &got)
		if a.status != 415 || got.Message != msgNotGRPC {
			t.Fatalf("got %d %q, want 415 %q", a.status, a.body, msgNotGRPC)
		}
	})
}
