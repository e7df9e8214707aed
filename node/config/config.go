// Package config owns a node's settings: the kong.conf file format, the
// GRAPEVINE_<KEY> environment overrides, Kong's defaults and the validation
// of every value. A Config is built once by Load and never changed after.
// It must not open sockets or files other than the config file itself.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// EnvPrefix is the prefix of environment variables that override config keys.
const EnvPrefix = "GRAPEVINE_"

// Config holds every setting of one node. Field comments name the kong.conf
// key and the default.
type Config struct {
	Database                string        // database: "postgres"; "off" is Kong's DB-less mode: the node serves declarative_config, no PostgreSQL
	PgHost                  string        // pg_host: "127.0.0.1"
	PgPort                  int           // pg_port: 5432
	PgUser                  string        // pg_user: "kong"
	PgPassword              string        // pg_password: ""
	PgDatabase              string        // pg_database: "kong"
	PgTimeout               time.Duration // pg_timeout: 5000 (ms)
	PgMaxConns              int           // pg_pool_size: 0 (pgx default)
	ProxyListen             []string      // proxy_listen: Kong's "0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport backlog=16384"; entries with their flags
	AdminListen             []string      // admin_listen: "127.0.0.1:8001" (Kong adds "127.0.0.1:8444 http2 ssl"; Grapevine keeps the Admin API plain by default)
	ClusterListen           string        // cluster_listen: "0.0.0.0:7946"; "off" (empty here) runs on polling alone, without gossip
	ClusterAdvertise        string        // cluster_advertise: "" (derived from the host's addresses)
	ClusterEncryptKey       string        // cluster_encrypt_key: "" (no gossip encryption)
	ClusterJoin             []string      // cluster_join: "" (peers come from the nodes table)
	ClusterKeyringFile      string        // cluster_keyring_file: "" (keys installed at run time are not kept across restarts)
	ClusterTTLOnFailure     time.Duration // cluster_ttl_on_failure: 3600 (s)
	NodeName                string        // node_name: "" (derived from hostname and cluster address)
	DBUpdateFrequency       time.Duration // db_update_frequency: 5 (s)
	DBUpdatePropagation     time.Duration // db_update_propagation: 0 (s)
	DBCacheTTL              time.Duration // db_cache_ttl: 0 (s, 0 = never expires)
	DeclarativeConfig       string        // declarative_config: ""; with database = off, the file served (none: an empty configuration)
	LogLevel                string        // log_level: "notice"
	Headers                 []string      // headers: "server_tokens, latency_tokens, x-kong-request-id"; Kong's own headers sent to clients ("off": none)
	HeadersUpstream         []string      // headers_upstream: "x-kong-request-id"; Kong's own headers sent upstream
	LatencyHeaders          string        // latency_headers: "kong" (X-Kong-*-Latency) or "grapevine" (X-Grapevine-*-Latency)
	DNSHostsFile            string        // dns_hostsfile: "/etc/hosts"; names looked up there before DNS
	DNSStaleTTL             time.Duration // dns_stale_ttl: 3600 (s); how long a failing name keeps its last addresses
	DNSNotFoundTTL          time.Duration // dns_not_found_ttl: 30 (s); when a name without records is asked again
	DNSErrorTTL             time.Duration // dns_error_ttl: 1 (s); when a failed lookup is tried again
	DNSOrder                []string      // dns_order: "LAST,SRV,A,CNAME"; the record types asked for a name, in turn
	DNSValidTTL             time.Duration // dns_valid_ttl: none (0: each record's TTL); replaces every record's TTL
	DNSResolver             []string      // dns_resolver: none (the system's resolver); name servers as "ip" or "ip:port"
	ErrorDefaultType        string        // error_default_type: "text/plain"; the body type of proxy errors when a request names none
	RouterFlavor            string        // router_flavor: "traditional_compatible" (the only one)
	Prefix                  string        // prefix: "/usr/local/kong"; the node's own folder, where its configuration cache lives
	DebugListen             string        // debug_listen: "off" (empty here); Grapevine's own key: Go's profiler (net/http/pprof) on this address
	UntrustedLua            string        // untrusted_lua: "sandbox"; how plugins run Lua from their config ("off": refused, "on": unrestricted)
	UntrustedLuaRequires    []string      // untrusted_lua_sandbox_requires: none; modules the sandbox's require may load
	UntrustedLuaEnvironment []string      // untrusted_lua_sandbox_environment: none; globals added to the sandbox

	// TLS of the proxy's and the Admin API's ssl listeners.
	SSLCert              []string // ssl_cert: none (a certificate is generated at start); paths or PEM, paired with ssl_cert_key
	SSLCertKey           []string // ssl_cert_key: none
	SSLCipherSuite       string   // ssl_cipher_suite: "intermediate" (modern, intermediate, old, custom)
	SSLCiphers           string   // ssl_ciphers: "" (the suite's); OpenSSL names, with ssl_cipher_suite = custom
	SSLProtocols         string   // ssl_protocols: "TLSv1.2 TLSv1.3"; used with ssl_cipher_suite = custom, as in Kong
	AdminSSLCert         []string // admin_ssl_cert: none (generated at start)
	AdminSSLCertKey      []string // admin_ssl_cert_key: none
	AdminSSLClientCA     string   // nginx_admin_ssl_client_certificate: "" ; CA certificates (path or PEM) Admin API clients are verified against
	AdminSSLVerifyClient string   // nginx_admin_ssl_verify_client: "off"; "on" requires a client certificate on ssl admin listeners

	// nginx directives Kong users set through kong.conf, in nginx's syntax.
	ClientHeaderTimeout time.Duration // nginx_proxy_client_header_timeout: 60s (nginx's default)
	ClientBodyTimeout   time.Duration // nginx_proxy_client_body_timeout: 60s, between two reads of a body
	SendTimeout         time.Duration // nginx_proxy_send_timeout: 60s, between two writes to a client
	ClientMaxBodySize   int64         // nginx_http_client_max_body_size: 0 (unlimited); larger request bodies get 413
	ClientBodyBuffer    int64         // nginx_http_client_body_buffer_size: 8k; a buffered request body beyond it goes to a temporary file
	LargeHeaderBuffers  [2]int64      // nginx_proxy_large_client_header_buffers: "4 8k" (count, bytes each)
	RlimitNofile        int           // nginx_main_worker_rlimit_nofile: auto (0: the hard limit)
	WorkerConnections   int           // nginx_events_worker_connections: auto (0: derived from the descriptor limit)
	AdminMaxBodySize    int64         // nginx_admin_client_max_body_size: "10m" (bytes here); larger Admin API bodies get 413
	// WorkerShutdownTimeout is nginx_main_worker_shutdown_timeout: how long
	// a stopping node drains its connections; 10s (kong quit's default).
	WorkerShutdownTimeout time.Duration

	// DeclarativeConfigString is declarative_config_string: ""; with
	// database = off, the configuration itself, which wins over
	// declarative_config's file, as in Kong.
	DeclarativeConfigString string
}

// Default returns Kong's defaults for every key.
func Default() Config {
	return Config{
		Database:              "postgres",
		PgHost:                "127.0.0.1",
		PgPort:                5432,
		PgUser:                "kong",
		PgDatabase:            "kong",
		PgTimeout:             5 * time.Second,
		ProxyListen:           []string{"0.0.0.0:8000 reuseport backlog=16384", "0.0.0.0:8443 http2 ssl reuseport backlog=16384"},
		AdminListen:           []string{"127.0.0.1:8001"},
		ClusterListen:         "0.0.0.0:7946",
		ClusterTTLOnFailure:   time.Hour,
		DBUpdateFrequency:     5 * time.Second,
		LogLevel:              "notice",
		LatencyHeaders:        "kong",
		UntrustedLua:          "sandbox",
		Headers:               []string{"server_tokens", "latency_tokens", "x-kong-request-id"},
		DNSHostsFile:          "/etc/hosts",
		DNSStaleTTL:           time.Hour,
		DNSNotFoundTTL:        30 * time.Second,
		DNSErrorTTL:           time.Second,
		DNSOrder:              []string{"LAST", "SRV", "A", "CNAME"},
		HeadersUpstream:       []string{"x-kong-request-id"},
		ErrorDefaultType:      "text/plain",
		RouterFlavor:          "traditional_compatible",
		Prefix:                "/usr/local/kong",
		SSLCipherSuite:        "intermediate",
		SSLProtocols:          "TLSv1.2 TLSv1.3",
		AdminSSLVerifyClient:  "off",
		ClientHeaderTimeout:   60 * time.Second,
		ClientBodyTimeout:     60 * time.Second,
		SendTimeout:           60 * time.Second,
		ClientBodyBuffer:      8 << 10,
		LargeHeaderBuffers:    [2]int64{4, 8 << 10},
		AdminMaxBodySize:      10 << 20,
		WorkerShutdownTimeout: 10 * time.Second,
	}
}

// KeyError names the key whose value could not be used.
type KeyError struct {
	Key    string
	Source string // "file.conf:12" or "env GRAPEVINE_PG_PORT"
	Err    error
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.Source, e.Key, e.Err)
}

func (e *KeyError) Unwrap() error { return e.Err }

// Load reads the kong.conf-format file at path ("" for none), then applies
// GRAPEVINE_<KEY> overrides from environ, then validates the result.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		if err := cfg.applyFile(path); err != nil {
			return Config{}, err
		}
	}
	if err := cfg.applyEnv(environ); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func (c *Config) applyFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading config file: %w", err)
	}
	defer f.Close()
	return c.applyReader(f, path)
}

// applyReader applies every "key = value" line of r, in order.
func (c *Config) applyReader(r io.Reader, name string) error {
	scanner := bufio.NewScanner(r)
	lineNo := 0
	for scanner.Scan() {
		lineNo++
		key, value, ok, err := parseLine(scanner.Text())
		source := fmt.Sprintf("%s:%d", name, lineNo)
		if err != nil {
			return &KeyError{Key: key, Source: source, Err: err}
		}
		if !ok {
			continue
		}
		if err := c.set(key, value); err != nil {
			return &KeyError{Key: key, Source: source, Err: err}
		}
	}
	if err := scanner.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	return nil
}

// parseLine splits one kong.conf line. Blank lines and comments give ok=false.
// As in Kong, '#' starts a comment unless escaped as '\#'.
func parseLine(line string) (key, value string, ok bool, err error) {
	line = stripComment(line)
	if strings.TrimSpace(line) == "" {
		return "", "", false, nil
	}
	key, value, found := strings.Cut(line, "=")
	key = strings.ToLower(strings.TrimSpace(key))
	if !found || key == "" {
		return strings.TrimSpace(line), "", false, errors.New("expected 'key = value'")
	}
	return key, strings.TrimSpace(value), true, nil
}

func stripComment(line string) string {
	var b strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '#':
			b.WriteByte('#')
			i++
		case line[i] == '#':
			return b.String()
		default:
			b.WriteByte(line[i])
		}
	}
	return b.String()
}

func (c *Config) applyEnv(environ []string) error {
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		key := strings.ToLower(strings.TrimPrefix(name, EnvPrefix))
		if err := c.set(key, strings.TrimSpace(value)); err != nil {
			return &KeyError{Key: key, Source: "env " + name, Err: err}
		}
	}
	return nil
}

func (c *Config) set(key, value string) error {
	k, ok := keyIndex[key]
	if !ok {
		return errors.New("unknown config key")
	}
	return k.set(c, value)
}

// Keys lists every config key Grapevine knows, sorted.
func Keys() []string {
	names := make([]string, 0, len(keyIndex))
	for name := range keyIndex {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// IsKey reports whether name (lower case, without prefix) is a config key.
func IsKey(name string) bool {
	_, ok := keyIndex[name]
	return ok
}
