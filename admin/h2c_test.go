package admin

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/net/http2"
)

// TestAdminHTTP2WithoutSSL: admin_listen's http2 on a plain listener is
// Kong's "http2 on" for the Admin API's server block
// (kong/templates/nginx_kong.lua), with which nginx takes HTTP/2 with
// prior knowledge (h2c) and still HTTP/1.1 on the same port.
func TestAdminHTTP2WithoutSSL(t *testing.T) {
	cfg := Config{Listen: "127.0.0.1:0 http2", Version: "3.9.1", Logger: zerolog.New(zerolog.NewTestWriter(t))}
	srv := New(cfg, bootstrappedStore(t), &recordingApplier{})
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	url := "http://" + srv.Addr().String() + "/status"
	h2c := &http.Client{Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}}
	t.Cleanup(h2c.CloseIdleConnections)
	for name, c := range map[string]*http.Client{"h2c": h2c, "HTTP/1.1": {}} {
		t.Run(name, func(t *testing.T) {
			resp, err := c.Get(url)
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			resp.Body.Close()
			want := map[string]int{"h2c": 2, "HTTP/1.1": 1}[name]
			if resp.StatusCode != 200 || resp.ProtoMajor != want {
				t.Fatalf("got HTTP/%d %d, want HTTP/%d 200", resp.ProtoMajor, resp.StatusCode, want)
			}
		})
	}
}
