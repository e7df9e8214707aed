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
	Shorthands:   []Shorthand{{Name: "url", Type: TypeString, Expand: expandServiceURL}},
	EntityChecks: checkService,
	ChecksJSON: []any{
		conditionalJSON("protocol", []any{"tcp", "tls", "udp", "grpc", "grpcs"}, "path"),
		conditionalNotJSON("protocol", []any{"https", "tls"}, "client_certificate"),
		conditionalNotJSON("protocol", []any{"https", "tls"}, "tls_verify"),
		conditionalNotJSON("protocol", []any{"https", "tls"}, "tls_verify_depth"),
		conditionalNotJSON("protocol", []any{"https", "tls"}, "ca_certificates"),
	},
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
	doc["port"] = defaultPort(u.Scheme)
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

func defaultPort(scheme string) int64 {
	switch scheme {
	case "https", "grpcs", "tls", "wss":
		return 443
	}
	return 80
}

func checkService(doc map[string]any, fe FieldErrors) {
	proto, _ := doc["protocol"].(string)
	switch proto {
	case "tcp", "tls", "udp", "grpc", "grpcs":
		conditional(doc, fe, "protocol", "path", "value must be null")
	}
	if proto != "https" && proto != "tls" {
		for _, f := range []string{"client_certificate", "tls_verify", "tls_verify_depth", "ca_certificates"} {
			conditional(doc, fe, "protocol", f, "value must be null")
		}
	}
}

// conditional reports Kong's conditional check failure when then-field is set.
func conditional(doc map[string]any, fe FieldErrors, ifField, thenField, msg string) {
	if isEmpty(doc[thenField]) {
		return
	}
	fe[thenField] = msg
	fe.Entity("failed conditional validation given value of field '" + ifField + "'")
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

func conditionalJSON(ifField string, oneOf []any, thenField string) any {
	return map[string]any{"conditional": map[string]any{
		"if_field": ifField, "if_match": map[string]any{"one_of": oneOf},
		"then_field": thenField, "then_match": map[string]any{"eq": nil},
	}}
}

func conditionalNotJSON(ifField string, notOneOf []any, thenField string) any {
	return map[string]any{"conditional": map[string]any{
		"if_field": ifField, "if_match": map[string]any{"not_one_of": notOneOf},
		"then_field": thenField, "then_match": map[string]any{"eq": nil},
	}}
}
