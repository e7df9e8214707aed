package node

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/internal/testutil"
	"github.com/grapevine-gw/grapevine/node/config"
)

// nextTLSHost gives the TLS tests loopback hosts of their own range
// (127.0.50.x), apart from the other cluster tests'.
var nextTLSHost atomic.Int32

// tlsClusterConfig is clusterConfig on a 127.0.50.x host, with Kong's
// ssl listener beside the plain one.
func tlsClusterConfig(t *testing.T, dsn string) config.Config {
	cfg := clusterConfig(t, dsn)
	host := fmt.Sprintf("127.0.50.%d", nextTLSHost.Add(1))
	cfg.ProxyListen = []string{host + ":8000", host + ":8443 http2 ssl"}
	cfg.AdminListen = []string{host + ":8001"}
	cfg.ClusterListen = host + ":7946"
	return cfg
}

// proxyTLSAddr is the node's ssl proxy listener.
func proxyTLSAddr(t *testing.T, n *Node) string {
	t.Helper()
	for _, a := range n.proxy.Addrs() {
		if a.TLS {
			return a.Addr.String()
		}
	}
	t.Fatalf("%s has no ssl proxy listener", n.Name())
	return ""
}

// servedCertificate is the leaf certificate a node's ssl listener
// presents for serverName.
func servedCertificate(addr, serverName string) (string, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: serverName, InsecureSkipVerify: true}) //nolint:gosec // the test reads what is served
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return string(conn.ConnectionState().PeerCertificates[0].Raw), nil
}

func servesCertificate(addr, serverName string, want *testutil.Cert) error {
	got, err := servedCertificate(addr, serverName)
	if err != nil {
		return err
	}
	if got != string(want.Cert.Raw) {
		return fmt.Errorf("%s serves another certificate for %s", addr, serverName)
	}
	return nil
}

// TestClusterCertificateLiveEverywhere: a certificate and its SNI written
// on one node are served by the other's ssl listener without a restart,
// and a rotation written on the second node reaches the first.
func TestClusterCertificateLiveEverywhere(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	a := startClusterNode(t, tlsClusterConfig(t, dsn), fastHooks)
	b := startClusterNode(t, tlsClusterConfig(t, dsn), fastHooks)
	first := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"live.test"}})
	second := testutil.NewCert(t, testutil.CertOptions{DNSNames: []string{"live.test"}})

	body, _ := json.Marshal(map[string]any{"cert": first.CertPEM, "key": first.KeyPEM, "snis": []string{"live.test"}})
	created := mustAdmin(t, a, 201, "POST", "/certificates", string(body))
	for _, n := range []*Node{a, b} {
		eventually(t, 5*time.Second, func() error { return servesCertificate(proxyTLSAddr(t, n), "live.test", first) })
	}
	body, _ = json.Marshal(map[string]any{"cert": second.CertPEM, "key": second.KeyPEM})
	mustAdmin(t, b, 200, "PATCH", "/certificates/"+created["id"].(string), string(body))
	for _, n := range []*Node{b, a} {
		eventually(t, 5*time.Second, func() error { return servesCertificate(proxyTLSAddr(t, n), "live.test", second) })
	}
	// Other names get the node's generated default certificate.
	if err := servesCertificate(proxyTLSAddr(t, a), "other.test", second); err == nil {
		t.Errorf("other.test got the live.test certificate, want the default one")
	}
}
