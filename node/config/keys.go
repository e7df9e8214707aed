package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/grapevine-gw/grapevine/internal/listen"
	"github.com/grapevine-gw/grapevine/proxy/kongheaders"
	"github.com/grapevine-gw/grapevine/proxy/tlsconf"
)

// key binds one kong.conf key to its Config field.
type key struct {
	name   string
	secret bool // never reported by Values (GET / on the Admin API)
	set    func(c *Config, value string) error
	get    func(c *Config) any
}

var keys = []key{
	{name: "database", set: oneOf(func(c *Config) *string { return &c.Database }, "postgres", "off"), get: func(c *Config) any { return c.Database }},
	{name: "pg_host", set: nonEmpty(func(c *Config) *string { return &c.PgHost }), get: func(c *Config) any { return c.PgHost }},
	{name: "pg_port", set: intBetween(func(c *Config) *int { return &c.PgPort }, 1, 65535), get: func(c *Config) any { return c.PgPort }},
	{name: "pg_user", set: nonEmpty(func(c *Config) *string { return &c.PgUser }), get: func(c *Config) any { return c.PgUser }},
	{name: "pg_password", secret: true, set: anyString(func(c *Config) *string { return &c.PgPassword })},
	{name: "pg_database", set: nonEmpty(func(c *Config) *string { return &c.PgDatabase }), get: func(c *Config) any { return c.PgDatabase }},
	{name: "pg_timeout", set: duration(func(c *Config) *time.Duration { return &c.PgTimeout }, time.Millisecond, 1), get: func(c *Config) any { return c.PgTimeout.Milliseconds() }},
	{name: "pg_pool_size", set: intBetween(func(c *Config) *int { return &c.PgMaxConns }, 0, 10000), get: func(c *Config) any { return c.PgMaxConns }},
	{name: "proxy_listen", set: listenList(func(c *Config) *[]string { return &c.ProxyListen }), get: func(c *Config) any { return c.ProxyListen }},
	{name: "admin_listen", set: listenList(func(c *Config) *[]string { return &c.AdminListen }), get: func(c *Config) any { return c.AdminListen }},
	{name: "cluster_listen", set: hostPortOrOff(func(c *Config) *string { return &c.ClusterListen }), get: func(c *Config) any { return c.ClusterListen }},
	{name: "debug_listen", set: hostPortOrOff(func(c *Config) *string { return &c.DebugListen }), get: func(c *Config) any { return c.DebugListen }},
	{name: "cluster_advertise", set: optionalHostPort(func(c *Config) *string { return &c.ClusterAdvertise }), get: func(c *Config) any { return c.ClusterAdvertise }},
	{name: "cluster_encrypt_key", secret: true, set: anyString(func(c *Config) *string { return &c.ClusterEncryptKey })},
	{name: "cluster_keyring_file", set: anyString(func(c *Config) *string { return &c.ClusterKeyringFile }), get: func(c *Config) any { return c.ClusterKeyringFile }},
	{name: "cluster_join", set: hostPortList(func(c *Config) *[]string { return &c.ClusterJoin }), get: func(c *Config) any { return c.ClusterJoin }},
	{name: "cluster_ttl_on_failure", set: duration(func(c *Config) *time.Duration { return &c.ClusterTTLOnFailure }, time.Second, 0), get: func(c *Config) any { return c.ClusterTTLOnFailure.Seconds() }},
	{name: "node_name", set: anyString(func(c *Config) *string { return &c.NodeName }), get: func(c *Config) any { return c.NodeName }},
	{name: "db_update_frequency", set: duration(func(c *Config) *time.Duration { return &c.DBUpdateFrequency }, time.Second, 0.001), get: func(c *Config) any { return c.DBUpdateFrequency.Seconds() }},
	{name: "db_update_propagation", set: duration(func(c *Config) *time.Duration { return &c.DBUpdatePropagation }, time.Second, 0), get: func(c *Config) any { return c.DBUpdatePropagation.Seconds() }},
	{name: "db_cache_ttl", set: duration(func(c *Config) *time.Duration { return &c.DBCacheTTL }, time.Second, 0), get: func(c *Config) any { return c.DBCacheTTL.Seconds() }},
	{name: "declarative_config", set: anyString(func(c *Config) *string { return &c.DeclarativeConfig }), get: func(c *Config) any { return c.DeclarativeConfig }},
	{name: "declarative_config_string", secret: true, set: anyString(func(c *Config) *string { return &c.DeclarativeConfigString })},
	{name: "untrusted_lua", set: oneOf(func(c *Config) *string { return &c.UntrustedLua }, "off", "on", "sandbox"), get: func(c *Config) any { return c.UntrustedLua }},
	{name: "untrusted_lua_sandbox_requires", set: stringList(func(c *Config) *[]string { return &c.UntrustedLuaRequires }), get: func(c *Config) any { return c.UntrustedLuaRequires }},
	{name: "untrusted_lua_sandbox_environment", set: stringList(func(c *Config) *[]string { return &c.UntrustedLuaEnvironment }), get: func(c *Config) any { return c.UntrustedLuaEnvironment }},
	{name: "log_level", set: oneOf(func(c *Config) *string { return &c.LogLevel }, "debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"), get: func(c *Config) any { return c.LogLevel }},
	{name: "headers", set: headerTokens(func(c *Config) *[]string { return &c.Headers }, false), get: func(c *Config) any { return c.Headers }},
	{name: "headers_upstream", set: headerTokens(func(c *Config) *[]string { return &c.HeadersUpstream }, true), get: func(c *Config) any { return c.HeadersUpstream }},
	{name: "latency_headers", set: oneOf(func(c *Config) *string { return &c.LatencyHeaders }, "kong", "grapevine"), get: func(c *Config) any { return c.LatencyHeaders }},
	{name: "nginx_proxy_client_header_timeout", set: nginxTimeout(func(c *Config) *time.Duration { return &c.ClientHeaderTimeout }), get: func(c *Config) any { return c.ClientHeaderTimeout.String() }},
	{name: "nginx_proxy_client_body_timeout", set: nginxTimeout(func(c *Config) *time.Duration { return &c.ClientBodyTimeout }), get: func(c *Config) any { return c.ClientBodyTimeout.String() }},
	{name: "nginx_main_worker_shutdown_timeout", set: nginxTimeout(func(c *Config) *time.Duration { return &c.WorkerShutdownTimeout }), get: func(c *Config) any { return c.WorkerShutdownTimeout.String() }},
	{name: "nginx_proxy_send_timeout", set: nginxTimeout(func(c *Config) *time.Duration { return &c.SendTimeout }), get: func(c *Config) any { return c.SendTimeout.String() }},
	{name: "nginx_http_client_max_body_size", set: nginxSize(func(c *Config) *int64 { return &c.ClientMaxBodySize }), get: func(c *Config) any { return FormatNginxSize(c.ClientMaxBodySize) }},
	{name: "nginx_http_client_body_buffer_size", set: nginxSizeLimit(func(c *Config) *int64 { return &c.ClientBodyBuffer }), get: func(c *Config) any { return FormatNginxSize(c.ClientBodyBuffer) }},
	{name: "nginx_proxy_large_client_header_buffers", set: headerBuffers(func(c *Config) *[2]int64 { return &c.LargeHeaderBuffers }), get: func(c *Config) any {
		return strconv.FormatInt(c.LargeHeaderBuffers[0], 10) + " " + FormatNginxSize(c.LargeHeaderBuffers[1])
	}},
	{name: "nginx_main_worker_rlimit_nofile", set: autoOrCount(func(c *Config) *int { return &c.RlimitNofile }), get: func(c *Config) any { return autoString(c.RlimitNofile) }},
	{name: "nginx_events_worker_connections", set: autoOrCount(func(c *Config) *int { return &c.WorkerConnections }), get: func(c *Config) any { return autoString(c.WorkerConnections) }},
	{name: "nginx_admin_client_max_body_size", set: nginxSizeLimit(func(c *Config) *int64 { return &c.AdminMaxBodySize }), get: func(c *Config) any { return FormatNginxSize(c.AdminMaxBodySize) }},
	{name: "dns_hostsfile", set: anyString(func(c *Config) *string { return &c.DNSHostsFile }), get: func(c *Config) any { return c.DNSHostsFile }},
	{name: "dns_stale_ttl", set: duration(func(c *Config) *time.Duration { return &c.DNSStaleTTL }, time.Second, 0), get: func(c *Config) any { return c.DNSStaleTTL.Seconds() }},
	{name: "dns_not_found_ttl", set: duration(func(c *Config) *time.Duration { return &c.DNSNotFoundTTL }, time.Second, 0), get: func(c *Config) any { return c.DNSNotFoundTTL.Seconds() }},
	{name: "dns_error_ttl", set: duration(func(c *Config) *time.Duration { return &c.DNSErrorTTL }, time.Second, 0), get: func(c *Config) any { return c.DNSErrorTTL.Seconds() }},
	{name: "dns_order", set: dnsOrder(func(c *Config) *[]string { return &c.DNSOrder }), get: func(c *Config) any { return c.DNSOrder }},
	{name: "dns_valid_ttl", set: optional(duration(func(c *Config) *time.Duration { return &c.DNSValidTTL }, time.Second, 0)), get: func(c *Config) any { return c.DNSValidTTL.Seconds() }},
	{name: "dns_resolver", set: dnsServers(func(c *Config) *[]string { return &c.DNSResolver }), get: func(c *Config) any { return c.DNSResolver }},
	{name: "error_default_type", set: oneOf(func(c *Config) *string { return &c.ErrorDefaultType }, "text/plain", "application/json", "application/xml", "text/html"), get: func(c *Config) any { return c.ErrorDefaultType }},
	{name: "ssl_cert", set: list(func(c *Config) *[]string { return &c.SSLCert }), get: func(c *Config) any { return pathsOnly(c.SSLCert) }},
	{name: "ssl_cert_key", secret: true, set: list(func(c *Config) *[]string { return &c.SSLCertKey })},
	{name: "ssl_cipher_suite", set: oneOf(func(c *Config) *string { return &c.SSLCipherSuite }, tlsconf.SuiteNames...), get: func(c *Config) any { return c.SSLCipherSuite }},
	{name: "ssl_ciphers", set: anyString(func(c *Config) *string { return &c.SSLCiphers }), get: func(c *Config) any { return c.SSLCiphers }},
	{name: "ssl_protocols", set: nonEmpty(func(c *Config) *string { return &c.SSLProtocols }), get: func(c *Config) any { return c.SSLProtocols }},
	{name: "admin_ssl_cert", set: list(func(c *Config) *[]string { return &c.AdminSSLCert }), get: func(c *Config) any { return pathsOnly(c.AdminSSLCert) }},
	{name: "admin_ssl_cert_key", secret: true, set: list(func(c *Config) *[]string { return &c.AdminSSLCertKey })},
	{name: "nginx_admin_ssl_client_certificate", set: anyString(func(c *Config) *string { return &c.AdminSSLClientCA }), get: func(c *Config) any { return pathsOnly([]string{c.AdminSSLClientCA}) }},
	{name: "nginx_admin_ssl_verify_client", set: oneOf(func(c *Config) *string { return &c.AdminSSLVerifyClient }, "off", "on", "optional"), get: func(c *Config) any { return c.AdminSSLVerifyClient }},
	{name: "prefix", set: nonEmpty(func(c *Config) *string { return &c.Prefix }), get: func(c *Config) any { return c.Prefix }},
	{name: "router_flavor", set: oneOf(func(c *Config) *string { return &c.RouterFlavor }, "traditional_compatible"), get: func(c *Config) any { return c.RouterFlavor }},
}

var keyIndex = func() map[string]key {
	index := make(map[string]key, len(keys))
	for _, k := range keys {
		index[k.name] = k
	}
	return index
}()

// Values returns every non-secret key with its value, as Kong reports its
// configuration on the Admin API's GET /.
func (c *Config) Values() map[string]any {
	values := make(map[string]any, len(keys))
	for _, k := range keys {
		if !k.secret {
			values[k.name] = k.get(c)
		}
	}
	return values
}

func anyString(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, value string) error {
		*field(c) = value
		return nil
	}
}

func nonEmpty(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, value string) error {
		if value == "" {
			return fmt.Errorf("must not be empty")
		}
		*field(c) = value
		return nil
	}
}

func oneOf(field func(*Config) *string, allowed ...string) func(*Config, string) error {
	return func(c *Config, value string) error {
		for _, a := range allowed {
			if value == a {
				*field(c) = value
				return nil
			}
		}
		return fmt.Errorf("invalid value %q, expected one of: %s", value, strings.Join(allowed, ", "))
	}
}

func intBetween(field func(*Config) *int, min, max int) func(*Config, string) error {
	return func(c *Config, value string) error {
		n, err := strconv.Atoi(value)
		if err != nil || n < min || n > max {
			return fmt.Errorf("invalid value %q, expected an integer between %d and %d", value, min, max)
		}
		*field(c) = n
		return nil
	}
}

// duration parses a number of units (Kong writes seconds or milliseconds as
// plain numbers) no smaller than min units.
func duration(field func(*Config) *time.Duration, unit time.Duration, min float64) func(*Config, string) error {
	return func(c *Config, value string) error {
		n, err := strconv.ParseFloat(value, 64)
		if err != nil || n < min || n > 1e9 {
			return fmt.Errorf("invalid value %q, expected a number no smaller than %g", value, min)
		}
		*field(c) = time.Duration(n * float64(unit))
		return nil
	}
}

func hostPort(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, value string) error {
		if err := checkHostPort(value); err != nil {
			return err
		}
		*field(c) = value
		return nil
	}
}

// hostPortOrOff accepts host:port, or "off" to disable the listener.
func hostPortOrOff(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, value string) error {
		if value == "off" {
			*field(c) = ""
			return nil
		}
		return hostPort(field)(c, value)
	}
}

func optionalHostPort(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, value string) error {
		if value == "" {
			*field(c) = ""
			return nil
		}
		return hostPort(field)(c, value)
	}
}

func hostPortList(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, value string) error {
		list := splitList(value)
		for _, item := range list {
			if err := checkHostPort(item); err != nil {
				return err
			}
		}
		*field(c) = list
		return nil
	}
}

// listenList parses Kong's listen syntax: "addr:port [flags], addr:port
// [flags]", keeping each entry with its flags; a flag Kong does not know or
// Grapevine cannot honour is refused (listen.Listener.Check). "off"
// disables the listener.
func listenList(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, value string) error {
		ls, err := listen.Parse(value)
		if err != nil {
			return err
		}
		if len(ls) == 0 && strings.TrimSpace(value) != "off" {
			return fmt.Errorf("must name at least one address or be 'off'")
		}
		for _, l := range ls {
			if err := checkHostPort(l.Addr); err != nil {
				return err
			}
			if err := l.Check(); err != nil {
				return err
			}
		}
		entries := make([]string, len(ls))
		for i, l := range ls {
			entries[i] = strings.Join(strings.Fields(l.Entry), " ")
		}
		*field(c) = entries
		return nil
	}
}

// dnsServers takes kong.conf's dns_resolver: a list of name servers, each
// an IP address with an optional port (53 when none).
func dnsServers(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, value string) error {
		var servers []string
		for _, item := range splitList(value) {
			host, port, err := net.SplitHostPort(item)
			if err != nil {
				host, port = strings.Trim(item, "[]"), "53"
			}
			if net.ParseIP(host) == nil {
				return fmt.Errorf("invalid name server %q, expected an IP address with an optional port", item)
			}
			servers = append(servers, net.JoinHostPort(host, port))
		}
		*field(c) = servers
		return nil
	}
}

// dnsOrder takes kong.conf's dns_order: record types, any case, kept in
// upper case; Kong's conf_loader message for any other.
func dnsOrder(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, value string) error {
		var order []string
		for _, item := range splitList(value) {
			item = strings.ToUpper(item)
			switch item {
			case "LAST", "SRV", "A", "AAAA", "CNAME":
				order = append(order, item)
			default:
				return fmt.Errorf("invalid entry '%s'", item)
			}
		}
		if len(order) == 0 {
			return fmt.Errorf("must name at least one record type")
		}
		*field(c) = order
		return nil
	}
}

// optional lets an empty value (Kong's NONE) leave the field zero.
func optional(set func(*Config, string) error) func(*Config, string) error {
	return func(c *Config, value string) error {
		if value == "" {
			return nil
		}
		return set(c, value)
	}
}

// headerTokens takes kong.conf's headers (or headers_upstream): tokens
// kongheaders.Parse accepts, with Kong's error for any other.
func headerTokens(field func(*Config) *[]string, upstream bool) func(*Config, string) error {
	return func(c *Config, value string) error {
		tokens := splitList(value)
		if _, err := kongheaders.Parse(tokens, upstream); err != nil {
			return err
		}
		*field(c) = tokens
		return nil
	}
}

// list takes a comma-separated list, "" for none.
func list(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, value string) error {
		*field(c) = splitList(value)
		return nil
	}
}

// pathsOnly reports file paths as they are and inline PEM as "(pem)", so
// GET / never carries certificates written into the configuration.
func pathsOnly(items []string) []string {
	out := make([]string, 0, len(items))
	for _, item := range items {
		if strings.Contains(item, "-----BEGIN") {
			item = "(pem)"
		}
		if item != "" {
			out = append(out, item)
		}
	}
	return out
}

func stringList(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, value string) error {
		*field(c) = splitList(value)
		return nil
	}
}

func splitList(value string) []string {
	var list []string
	for _, item := range strings.Split(value, ",") {
		if item = strings.TrimSpace(item); item != "" {
			list = append(list, item)
		}
	}
	return list
}

func checkHostPort(value string) error {
	host, port, err := net.SplitHostPort(value)
	if err != nil {
		return fmt.Errorf("invalid address %q, expected host:port", value)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port in %q", value)
	}
	if host == "" {
		return fmt.Errorf("invalid address %q, host is empty (use 0.0.0.0 for every interface)", value)
	}
	return nil
}
