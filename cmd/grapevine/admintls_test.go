package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/internal/pgtest"
	"github.com/grapevine-gw/grapevine/internal/testutil"
	"github.com/grapevine-gw/grapevine/node"
)

// TestClusterCLIOverAdminMutualTLS: a node whose Admin API listens only
// with ssl and requires client certificates (admin_ssl_cert,
// nginx_admin_ssl_verify_client = on, as Kong users set it through
// nginx_admin_* keys) refuses a client without a certificate, and the
// cluster command reaches it over TLS with --tls-cert.
func TestClusterCLIOverAdminMutualTLS(t *testing.T) {
	dir := t.TempDir()
	server := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"admin.test"}})
	clientCA := testutil.NewCert(t, testutil.CertOptions{CA: true})
	client := testutil.NewCert(t, testutil.CertOptions{Parent: clientCA})
	files := map[string]string{"server.crt": server.CertPEM, "server.key": server.KeyPEM, "ca.crt": clientCA.CertPEM,
		"client.crt": client.CertPEM, "client.key": client.KeyPEM}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dsn := pgtest.NewDatabase(t)
	u, _ := url.Parse(dsn)
	host := "127.0.50.201"
	conf := writeFile(t, fmt.Sprintf(`pg_host = %s
pg_port = %s
pg_user = %s
pg_database = %s
proxy_listen = %s:8000
admin_listen = %s:8444 ssl http2
cluster_listen = %s:7946
admin_ssl_cert = %s
admin_ssl_cert_key = %s
nginx_admin_ssl_verify_client = on
nginx_admin_ssl_client_certificate = %s
prefix = %s
`, u.Hostname(), u.Port(), u.User.Username(), strings.TrimPrefix(u.Path, "/"), host, host, host,
		filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.crt"), dir))
	if code, _, errOut := runCLI(t, "migrations", "bootstrap", "-c", conf); code != 0 {
		t.Fatalf("bootstrap: %s", errOut)
	}
	cfg, err := loadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	n := node.New(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	if err := n.Start(context.Background()); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})

	t.Run("a client without a certificate is refused", func(t *testing.T) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the test checks the refusal
		resp, err := c.Get("https://" + host + ":8444/")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("got %d, want the handshake refused", resp.StatusCode)
		}
	})
	t.Run("the cluster command without --tls-cert fails", func(t *testing.T) {
		if code, _, _ := runCLI(t, "cluster", "members", "-c", conf); code == 0 {
			t.Fatalf("got exit 0, want a failure")
		}
	})
	t.Run("the cluster command with --tls-cert", func(t *testing.T) {
		code, out, errOut := runCLI(t, "cluster", "members", "-c", conf,
			"--tls-cert", filepath.Join(dir, "client.crt"), "--tls-key", filepath.Join(dir, "client.key"))
		if code != 0 || !strings.Contains(out, n.Name()) {
			t.Fatalf("got exit %d, %q %q; want the member list naming %s", code, out, errOut, n.Name())
		}
	})
}
