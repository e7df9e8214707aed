package config

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/grapevine-gw/grapevine/proxy/tlsconf"
)

// Validate checks the rules that span keys or need the whole value.
func (c *Config) Validate() error {
	if c.ClusterEncryptKey != "" {
		if err := checkEncryptKey(c.ClusterEncryptKey); err != nil {
			return &KeyError{Key: "cluster_encrypt_key", Source: "config", Err: err}
		}
	}
	if len(c.ProxyListen) == 0 && len(c.AdminListen) == 0 {
		return &KeyError{Key: "proxy_listen", Source: "config", Err: fmt.Errorf("proxy_listen and admin_listen are both off; the node would serve nothing")}
	}
	return c.validateTLS()
}

// validateTLS checks the TLS keys together: the cipher policy parses,
// certificates and keys come in pairs, and a client certificate check on
// the Admin API names the CA to check against.
func (c *Config) validateTLS() error {
	if _, err := tlsconf.ParsePolicy(c.SSLCipherSuite, c.SSLCiphers, c.SSLProtocols); err != nil {
		key := "ssl_cipher_suite"
		switch {
		case c.SSLCipherSuite != "custom":
		case strings.HasPrefix(err.Error(), "ssl_protocols"):
			key = "ssl_protocols"
		default:
			key = "ssl_ciphers"
		}
		return &KeyError{Key: key, Source: "config", Err: err}
	}
	if len(c.SSLCert) != len(c.SSLCertKey) {
		return &KeyError{Key: "ssl_cert", Source: "config", Err: fmt.Errorf("%d certificates but %d keys in ssl_cert_key; they are taken in pairs", len(c.SSLCert), len(c.SSLCertKey))}
	}
	if len(c.AdminSSLCert) != len(c.AdminSSLCertKey) {
		return &KeyError{Key: "admin_ssl_cert", Source: "config", Err: fmt.Errorf("%d certificates but %d keys in admin_ssl_cert_key; they are taken in pairs", len(c.AdminSSLCert), len(c.AdminSSLCertKey))}
	}
	if c.AdminSSLVerifyClient != "off" && c.AdminSSLClientCA == "" {
		return &KeyError{Key: "nginx_admin_ssl_verify_client", Source: "config", Err: fmt.Errorf("needs nginx_admin_ssl_client_certificate, the CA certificates clients are checked against")}
	}
	return nil
}

// checkEncryptKey accepts what serf accepts: base64 of 16, 24 or 32 bytes.
func checkEncryptKey(value string) error {
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return fmt.Errorf("not valid base64: %w", err)
	}
	switch len(raw) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("decodes to %d bytes, want 16, 24 or 32 (AES-128/192/256)", len(raw))
}
