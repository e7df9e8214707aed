package entity

import (
	"net/url"
	"regexp"
	"strings"
)

// The logging plugins' schemas after Kong 3.9's
// kong/plugins/http-log/schema.lua and kong/tools/queue_schema.lua
// (typedefs.queue).

func init() {
	config := configField(
		Field{Name: "http_endpoint", Type: TypeString, Required: true, Check: checkURL},
		strDefault("method", "POST", "POST", "PUT", "PATCH"),
		strDefault("content_type", "application/json", "application/json", "application/json; charset=utf-8"),
		number("timeout", 10000),
		number("keepalive", 60000),
		// Deprecated (queue.*): no default, kept for old configurations.
		Field{Name: "retry_count", Type: TypeInteger},
		Field{Name: "queue_size", Type: TypeInteger},
		Field{Name: "flush_timeout", Type: TypeNumber},
		Field{Name: "headers", Type: TypeMap, Keys: &Field{Type: TypeString, Check: checkHTTPLogHeader},
			Values: &Field{Type: TypeString}},
		queueRecord(),
		luaCodeField("custom_fields_by_lua"),
	)
	config.RecordCheck = checkHTTPLogConfig
	registerPlugin("http-log", 12, []Field{allProtocolsField(), config})
}

// queueRecord is typedefs.queue (kong/tools/queue_schema.lua).
func queueRecord() Field {
	return record("queue",
		Field{Name: "max_batch_size", Type: TypeInteger, Default: 1, Between: []int64{1, 1000000}},
		Field{Name: "max_coalescing_delay", Type: TypeNumber, Default: 1, Between: []int64{0, 3600}},
		Field{Name: "max_entries", Type: TypeInteger, Default: 10000, Between: []int64{1, 1000000}},
		Field{Name: "max_bytes", Type: TypeInteger},
		number("max_retry_time", 60),
		number("initial_retry_delay", 0.01),
		number("max_retry_delay", 60),
		Field{Name: "concurrency_limit", Type: TypeInteger, Default: 1, OneOf: []any{int64(-1), int64(1)}},
	)
}

// checkURL is typedefs.url's validate_url.
func checkURL(v any) string {
	u, err := url.Parse(v.(string))
	if err != nil {
		return "could not parse url. " + err.Error()
	}
	if u.Host == "" {
		return "missing host in url"
	}
	if u.Scheme == "" {
		return "missing scheme in url"
	}
	return ""
}

var (
	hostHeaderRe          = regexp.MustCompile(`^[Hh][Oo][Ss][Tt]$`)
	contentLengthHeaderRe = regexp.MustCompile(`^[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]$`)
	contentTypeHeaderRe   = regexp.MustCompile(`^[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Tt][Yy][Pp][Ee]$`)
)

// checkHTTPLogHeader is the headers keys' typedefs.header_name with its
// match_none rules.
func checkHTTPLogHeader(v any) string {
	if msg := checkPluginHeaderName(v); msg != "" {
		return msg
	}
	s := v.(string)
	switch {
	case hostHeaderRe.MatchString(s):
		return "cannot contain 'Host' header"
	case contentLengthHeaderRe.MatchString(s):
		return "cannot contain 'Content-Length' header"
	case contentTypeHeaderRe.MatchString(s):
		return "cannot contain 'Content-Type' header"
	}
	return ""
}

// checkHTTPLogConfig refuses user info in http_endpoint beside an
// Authorization header (the schema's custom_validator).
func checkHTTPLogConfig(config map[string]any) string {
	raw, _ := config["http_endpoint"].(string)
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	headers, _ := config["headers"].(map[string]any)
	for name := range headers {
		if strings.EqualFold(name, "authorization") {
			return "specifying both an 'Authorization' header and user info in 'http_endpoint' is not allowed"
		}
	}
	return ""
}
