package config

import (
	"encoding/base64"
	"fmt"
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
