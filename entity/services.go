package entity

import (
	"net/url"
	"strconv"
	"strings"
)

// Services is Kong's services schema (kong/db/schema/entities/services.lua).
var Services = &Schema{
	Name:        "services",
	EndpointKey: "name",
	Fields: []Field{
		uuidField("id"),
		timestampField("created_at"),
		timestampField("updated_at"),
		utf8NameField("name"),
		{Name: "retries", Type: TypeInteger, Default: int64(5), Between: []int64{0, 32767}},
		{Name: "protocol", Type: TypeString, Default: "http", Required: true, OneOf: protocolNames},
		{Name: "host", Type: TypeString, Required: true, Check: checkHost},
		portField("port", int64(80), true),
		{Name: "path", Type: TypeString, StartsWith: "/", Check: checkPath},
		timeoutField("connect_timeout"),
		timeoutField("write_timeout"),
		timeoutField("read_timeout"),
		tagsField(),
		{Name: "client_certificate", Type: TypeForeign, Reference: "certificates"},
		{Name: "tls_verify", Type: TypeBoolean},
		{Name: "tls_verify_depth", Type: TypeInteger, Between: []int64{0, 64}},
		{Name: "ca_certificates", Type: TypeArray, Elements: &Field{Type: TypeString, UUID: true}},
		{Name: "enabled", Type: TypeBoolean, Default: true, Required: true},
	},
	Shorthands: []Shorthand{{Name: "url", Type: TypeString, Expand: expandServiceURL}},
	Checks: []Check{
		Conditional{If: "protocol", IfMatch: Match{OneOf: []any{"tcp", "tls", "udp", "grpc", "grpcs"}},
			Then: "path", ThenMatch: Match{Null: true}},
		tlsOnly("client_certificate"),
		tlsOnly("tls_verify"),
		tlsOnly("tls_verify_depth"),
		tlsOnly("ca_certificates"),
	},
}

// tlsOnly is a service field that only https and tls services may set.
func tlsOnly(field string) Check {
	return Conditional{If: "protocol", IfMatch: Match{NotOneOf: []any{"https", "tls"}},
		Then: field, ThenMatch: Match{Null: true}}
}

func timeoutField(name string) Field {
	return Field{Name: name, Type: TypeInteger, Default: int64(60000), Between: []int64{1, 2147483646}}
}

// expandServiceURL turns url = "https://h:8443/p" into protocol, host, port
// and path, overriding any of those given separately.
func expandServiceURL(v any, doc map[string]any) string {
	u, err := url.Parse(v.(string))
	if err != nil || u.Scheme == "" || u.Host == "" {
		// Kong still assigns what it could parse; the schema then reports
		// the missing host.
		doc["host"] = nil
		return ""
	}
	doc["protocol"] = u.Scheme
	doc["host"] = u.Hostname()
	if strings.Contains(u.Hostname(), ":") {
		doc["host"] = "[" + u.Hostname() + "]"
	}
	doc["port"] = urlDefaultPort(u.Scheme)
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return "invalid port number"
		}
		doc["port"] = int64(n)
	}
	doc["path"] = nil
	if path := u.EscapedPath(); path != "" {
		doc["path"] = path
	}
	return ""
}

// urlDefaultPort is the port of a url without one: Kong's url shorthand
// (kong/db/schema/entities/services.lua) knows 443 for https only; every
// other scheme, grpcs and tls included, gets the schema's default, 80.
func urlDefaultPort(scheme string) int64 {
	if scheme == "https" {
		return 443
	}
	return 80
}

// DefaultPort is a protocol's standard upstream port, the one a Host
// header leaves out: 443 for https and grpcs, 80 otherwise (Kong's
// set_host_header, kong/runloop/balancer/init.lua).
func DefaultPort(protocol string) int {
	if protocol == "https" || protocol == "grpcs" {
		return 443
	}
	return 80
}

// isEmpty is Kong's "not set": null or an empty array/map/string.
func isEmpty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case []any:
		return len(t) == 0
	case map[string]any:
		return len(t) == 0
	case string:
		return t == ""
	}
	return false
}
