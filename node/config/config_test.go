package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeConf(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kong.conf")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadDefaults(t *testing.T) {
	got, err := Load("", nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Fatalf("got %+v, want defaults %+v", got, Default())
	}
	// Kong's proxy_listen default (kong/templates/kong_defaults.lua);
	// the Admin API stays plain on 8001 alone.
	wantProxy := []string{"0.0.0.0:8000 reuseport backlog=16384", "0.0.0.0:8443 http2 ssl reuseport backlog=16384"}
	if !reflect.DeepEqual(got.ProxyListen, wantProxy) || got.AdminListen[0] != "127.0.0.1:8001" || got.ClusterListen != "0.0.0.0:7946" {
		t.Fatalf("listen defaults differ from Kong's: %v %v %v", got.ProxyListen, got.AdminListen, got.ClusterListen)
	}
}

func TestLoadFileAndEnv(t *testing.T) {
	path := writeConf(t, `
# a comment
pg_host = db.internal   # trailing comment
pg_port=6432
pg_password = p\#ss
proxy_listen = 0.0.0.0:9000 reuseport backlog=16384, 127.0.0.1:9001
db_update_frequency = 0.5
log_level = debug
cluster_listen = off
nginx_admin_client_max_body_size = 512k
dns_order = last, a ,SRV
dns_valid_ttl = 2.5
untrusted_lua = off
untrusted_lua_sandbox_environment = os.getenv, io
`)
	env := []string{"GRAPEVINE_PG_PORT=7000", "GRAPEVINE_ADMIN_LISTEN=127.0.0.2:8001", "OTHER=1"}
	got, err := Load(path, env)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"pg_host", got.PgHost, "db.internal"},
		{"pg_port from env wins", got.PgPort, 7000},
		{"escaped hash", got.PgPassword, "p#ss"},
		{"proxy_listen entries kept with their flags", got.ProxyListen, []string{"0.0.0.0:9000 reuseport backlog=16384", "127.0.0.1:9001"}},
		{"admin_listen from env", got.AdminListen, []string{"127.0.0.2:8001"}},
		{"db_update_frequency seconds", got.DBUpdateFrequency, 500 * time.Millisecond},
		{"log_level", got.LogLevel, "debug"},
		{"cluster_listen off", got.ClusterListen, ""},
		{"debug_listen off unless set", got.DebugListen, ""},
		{"nginx_admin_client_max_body_size", got.AdminMaxBodySize, int64(512 << 10)},
		{"dns_order upper case", got.DNSOrder, []string{"LAST", "A", "SRV"}},
		{"dns_valid_ttl seconds", got.DNSValidTTL, 2500 * time.Millisecond},
		{"untrusted_lua", got.UntrustedLua, "off"},
		{"untrusted_lua_sandbox_environment", got.UntrustedLuaEnvironment, []string{"os.getenv", "io"}},
		{"untrusted_lua_sandbox_requires unset", got.UntrustedLuaRequires, []string(nil)},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Fatalf("got %v, want %v", c.got, c.want)
			}
		})
	}
}

func TestLoadRejectsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		env     []string
		wantKey string
		wantMsg string
	}{
		{"unknown key", "pg_hots = x\n", nil, "pg_hots", "unknown config key"},
		{"unknown env key", "", []string{"GRAPEVINE_NOPE=1"}, "nope", "unknown config key"},
		{"port not a number", "pg_port = abc\n", nil, "pg_port", "integer between 1 and 65535"},
		{"port out of range", "pg_port = 70000\n", nil, "pg_port", "integer between 1 and 65535"},
		{"bad database", "database = cassandra\n", nil, "database", "expected one of: postgres"},
		{"bad log level", "log_level = loud\n", nil, "log_level", "expected one of"},
		{"bad untrusted_lua", "untrusted_lua = maybe\n", nil, "untrusted_lua", "expected one of: off, on, sandbox"},
		{"listen without port", "proxy_listen = 0.0.0.0\n", nil, "proxy_listen", "expected host:port"},
		{"cluster listen bad", "cluster_listen = :x\n", nil, "cluster_listen", "invalid"},
		{"listen flag unknown", "proxy_listen = 0.0.0.0:8000 sll\n", nil, "proxy_listen", "unknown flag"},
		{"listen proxy_protocol", "proxy_listen = 0.0.0.0:8000 proxy_protocol\n", nil, "proxy_listen", "not supported"},
		{"cipher suite fips", "ssl_cipher_suite = fips\n", nil, "ssl_cipher_suite", "expected one of"},
		{"custom cipher unknown", "ssl_cipher_suite = custom\nssl_ciphers = HIGH:!aNULL\n", nil, "ssl_ciphers", "unknown or unsupported cipher"},
		{"custom protocols with a hole", "ssl_cipher_suite = custom\nssl_ciphers = ECDHE-RSA-AES128-GCM-SHA256\nssl_protocols = TLSv1.1 TLSv1.3\n", nil, "ssl_protocols", "consecutive"},
		{"ssl_cert without key", "ssl_cert = /a.crt\n", nil, "ssl_cert", "taken in pairs"},
		{"admin client check without CA", "nginx_admin_ssl_verify_client = on\n", nil, "nginx_admin_ssl_verify_client", "needs nginx_admin_ssl_client_certificate"},
		{"negative frequency", "db_update_frequency = -1\n", nil, "db_update_frequency", "no smaller than"},
		{"line without equals", "just words\n", nil, "just words", "expected 'key = value'"},
		{"short encrypt key", "cluster_encrypt_key = c2hvcnQ=\n", nil, "cluster_encrypt_key", "want 16, 24 or 32"},
		{"body size not a size", "nginx_admin_client_max_body_size = 10mb\n", nil, "nginx_admin_client_max_body_size", "invalid size"},
		{"body size negative", "nginx_admin_client_max_body_size = -1\n", nil, "nginx_admin_client_max_body_size", "invalid size"},
		{"body size no limit", "nginx_admin_client_max_body_size = 0\n", nil, "nginx_admin_client_max_body_size", "not supported"},
		// kong/conf_loader/parse.lua's message
		{"dns_order type unknown", "dns_order = LAST,MX\n", nil, "dns_order", "invalid entry 'MX'"},
		{"dns_valid_ttl negative", "dns_valid_ttl = -1\n", nil, "dns_valid_ttl", "no smaller than"},
		{"encrypt key not base64", "cluster_encrypt_key = %%%\n", nil, "cluster_encrypt_key", "not valid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeConf(t, tt.file)
			}
			_, err := Load(path, tt.env)
			var keyErr *KeyError
			if !errors.As(err, &keyErr) {
				t.Fatalf("got error %v, want a *KeyError", err)
			}
			if keyErr.Key != tt.wantKey {
				t.Errorf("got key %q, want %q", keyErr.Key, tt.wantKey)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got message %q, want it to contain %q", err.Error(), tt.wantMsg)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.conf"), nil)
	if err == nil || !strings.Contains(err.Error(), "reading config file") {
		t.Fatalf("got %v, want a reading config file error", err)
	}
}

func TestValuesHideSecrets(t *testing.T) {
	cfg, err := Load("", []string{"GRAPEVINE_PG_PASSWORD=hunter2", "GRAPEVINE_CLUSTER_ENCRYPT_KEY=" + "MDEyMzQ1Njc4OWFiY2RlZg=="})
	if err != nil {
		t.Fatal(err)
	}
	values := cfg.Values()
	for _, secret := range []string{"pg_password", "cluster_encrypt_key"} {
		if _, ok := values[secret]; ok {
			t.Errorf("Values reports %s, want it hidden", secret)
		}
	}
	if values["database"] != "postgres" {
		t.Errorf("got database %v, want postgres", values["database"])
	}
}

// TestNginxSize follows nginx's size syntax (ngx_parse_offset) for
// nginx_admin_client_max_body_size, whose Kong default is 10m
// (kong/templates/kong_defaults.lua).
func TestNginxSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		text string
	}{
		{"10m", 10 << 20, "10m"},
		{"10M", 10 << 20, "10m"},
		{"512k", 512 << 10, "512k"},
		{"1g", 1 << 30, "1g"},
		{"1024", 1 << 10, "1k"},
		{"1000", 1000, "1000"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseNginxSize(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
			if text := FormatNginxSize(got); text != tt.text {
				t.Errorf("got %q, want %q", text, tt.text)
			}
		})
	}
	for _, bad := range []string{"", "m", "1.5m", "1t", "+1", " 1", "99999999999999999g"} {
		if _, err := ParseNginxSize(bad); err == nil {
			t.Errorf("%q: got no error, want one", bad)
		}
	}
	// Kong's defaults (kong/templates/kong_defaults.lua): no limit on
	// proxied bodies, 8k of one held in memory, 10m on Admin API bodies.
	defaults := Default()
	def := defaults.Values()
	for key, want := range map[string]string{
		"nginx_admin_client_max_body_size":   "10m",
		"nginx_http_client_max_body_size":    "0",
		"nginx_http_client_body_buffer_size": "8k",
	} {
		if got := def[key]; got != want {
			t.Errorf("%s: got default %v, want %s", key, got, want)
		}
	}
}
