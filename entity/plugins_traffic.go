package entity

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/grapevine-gw/grapevine/internal/luasandbox"
)

// The traffic plugins' schemas (kong/plugins/{rate-limiting,cors,
// request-transformer,response-transformer,request-termination,prometheus,
// file-log}/schema.lua) and their
// handlers' PRIORITY.
func init() {
	registerPlugin("rate-limiting", 910, []Field{httpProtocolsField(), rateLimitingConfig()}, rateLimitingChecks()...)
	registerPlugin("cors", 2000, []Field{noConsumer(), httpProtocolsField(), configField(
		Field{Name: "origins", Type: TypeArray, Elements: &Field{Type: TypeString, Check: checkOrigin}},
		stringArray("headers", nil),
		stringArray("exposed_headers", nil),
		Field{Name: "methods", Type: TypeArray, Default: corsMethods, Elements: &Field{Type: TypeString, OneOf: corsMethods}},
		number("max_age", nil),
		boolField("credentials", false),
		boolField("private_network", false),
		boolField("preflight_continue", false),
	)})
	registerPlugin("request-transformer", 801, []Field{allProtocolsField(), configField(
		Field{Name: "http_method", Type: TypeString, Check: checkMethod},
		record("remove", requiredStrings("body", nil), requiredStrings("headers", checkTransformHeader), requiredStrings("querystring", nil)),
		record("rename", requiredStrings("body", checkTransformValue), colonHeaders(checkTransformHeaderPair), requiredStrings("querystring", checkTransformValue)),
		record("replace", append(colonRecordFields(), str("uri"))...),
		record("add", colonRecordFields()...),
		record("append", colonRecordFields()...),
	)})
	registerPlugin("response-transformer", 800, []Field{httpProtocolsField(), configField(
		record("remove", requiredStrings("json", nil), requiredStrings("headers", nil)),
		record("rename", colonStrings("json", nil), colonStrings("headers", checkTransformHeaderPair)),
		record("replace", jsonColonRecordFields()...),
		record("add", jsonColonRecordFields()...),
		record("append", jsonColonRecordFields()...),
	)})
	registerPlugin("request-termination", 2, []Field{httpProtocolsField(), requestTerminationConfig()})
	registerPlugin("prometheus", 13, []Field{allProtocolsField(), configField(
		Field{Name: "per_consumer", Type: TypeBoolean, Default: false},
		Field{Name: "status_code_metrics", Type: TypeBoolean, Default: false},
		Field{Name: "ai_metrics", Type: TypeBoolean, Default: false},
		Field{Name: "latency_metrics", Type: TypeBoolean, Default: false},
		Field{Name: "bandwidth_metrics", Type: TypeBoolean, Default: false},
		Field{Name: "upstream_health_metrics", Type: TypeBoolean, Default: false},
	)})
	registerPlugin("file-log", 9, []Field{allProtocolsField(), configField(
		Field{Name: "path", Type: TypeString, Required: true, Check: checkLogPath,
			Extra: map[string]any{"match": `^[^*&%%\` + "`" + `]+$`, "err": "not a valid filename"}},
		boolField("reopen", false),
		luaCodeField("custom_fields_by_lua"),
	)})
}

var ratePeriods = []string{"second", "minute", "hour", "day", "month", "year"}

func rateLimitingConfig() Field {
	fields := make([]Field, 0, 20)
	for _, p := range ratePeriods {
		fields = append(fields, Field{Name: p, Type: TypeNumber, Gt: gt(0)})
	}
	fields = append(fields,
		strDefault("limit_by", "consumer", "consumer", "credential", "ip", "service", "header", "path"),
		headerNameField("header_name"),
		Field{Name: "path", Type: TypeString, StartsWith: "/", Check: checkPath},
		strDefault("policy", "local", "local", "cluster", "redis"),
		boolField("fault_tolerant", true),
		redisConfig(),
		boolField("hide_client_headers", false),
		Field{Name: "error_code", Type: TypeNumber, Default: int64(429), Gt: gt(0)},
		strDefault("error_message", "API rate limit exceeded"),
		Field{Name: "sync_rate", Type: TypeNumber, Required: true, Default: int64(-1)},
	)
	f := configField(fields...)
	f.RecordCheck = checkRatePeriods
	f.Shorthands = redisShorthands("rate-limiting")
	return f
}

// redisShorthands are the config.redis_* names Kong 3.9 still accepts for
// config.redis.* (rate-limiting/schema.lua's shorthand_fields, to be
// removed in 4.0).
func redisShorthands(plugin string) []RecordShorthand {
	zero := 0
	fields := []struct {
		name   string
		typ    Type
		lenMin *int
	}{
		{"host", TypeString, nil}, {"port", TypeInteger, nil}, {"password", TypeString, &zero},
		{"username", TypeString, nil}, {"ssl", TypeBoolean, nil}, {"ssl_verify", TypeBoolean, nil},
		{"server_name", TypeString, nil}, {"timeout", TypeInteger, nil}, {"database", TypeInteger, nil},
	}
	out := make([]RecordShorthand, len(fields))
	for i, f := range fields {
		out[i] = RecordShorthand{Name: "redis_" + f.name, Type: f.typ, LenMin: f.lenMin, Path: []string{"redis", f.name},
			Message: plugin + ": config.redis_" + f.name + " is deprecated, please use config.redis." + f.name + " instead"}
	}
	return out
}

// redisConfig is kong/tools/redis/schema.lua's config_schema.
func redisConfig() Field {
	return record("redis",
		Field{Name: "host", Type: TypeString, Check: checkHost},
		portField("port", int64(6379), false),
		Field{Name: "timeout", Type: TypeInteger, Default: int64(2000), Between: []int64{0, 2147483646}},
		str("username"),
		str("password"),
		Field{Name: "database", Type: TypeInteger, Default: int64(0)},
		Field{Name: "ssl", Type: TypeBoolean, Default: false},
		Field{Name: "ssl_verify", Type: TypeBoolean, Default: false},
		Field{Name: "server_name", Type: TypeString, Check: checkSNI},
	)
}

func rateLimitingChecks() []Check {
	periods := make(AtLeastOneOf, len(ratePeriods))
	for i, p := range ratePeriods {
		periods[i] = "config." + p
	}
	whenRedis := func(field string) Check {
		return Conditional{If: "config.policy", IfMatch: Match{Eq: "redis"}, Then: "config.redis." + field, ThenMatch: Match{Required: true}}
	}
	return []Check{periods, whenRedis("host"), whenRedis("port"), whenRedis("timeout"),
		Conditional{If: "config.limit_by", IfMatch: Match{Eq: "header"}, Then: "config.header_name", ThenMatch: Match{Required: true}},
		Conditional{If: "config.limit_by", IfMatch: Match{Eq: "path"}, Then: "config.path", ThenMatch: Match{Required: true}},
	}
}

// checkRatePeriods is the schema's validate_periods_order: a longer
// window may not allow fewer requests, and sync_rate is redis's only.
func checkRatePeriods(config map[string]any) string {
	for i, lower := range ratePeriods {
		v1, ok := toNumber(config[lower])
		if config[lower] == nil || !ok {
			continue
		}
		for _, upper := range ratePeriods[i+1:] {
			if v2, ok := toNumber(config[upper]); config[upper] != nil && ok && v2 < v1 {
				return fmt.Sprintf("The limit for %s(%.1f) cannot be lower than the limit for %s(%.1f)", upper, v2, lower, v1)
			}
		}
	}
	rate, _ := toNumber(config["sync_rate"])
	if config["policy"] != "redis" && rate != -1 {
		return "sync_rate can only be used with the redis policy"
	}
	if config["policy"] == "redis" && rate != -1 && rate < 0.02 {
		return "sync_rate must be greater than 0.02, or -1 to disable"
	}
	return ""
}

var corsMethods = []any{"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"}

func checkOrigin(v any) string {
	s := v.(string)
	if s == "*" {
		return ""
	}
	if _, err := regexp.Compile(s); err != nil {
		return "'" + s + "' is not a valid regex"
	}
	return ""
}

func requiredStrings(name string, check func(any) string) Field {
	return Field{Name: name, Type: TypeArray, Required: true, Default: []any{}, Elements: &Field{Type: TypeString, Check: check}}
}

// colonHeaders are "name:value" headers: the schema's match
// ^[^:]+:.*$, then check.
func colonHeaders(check func(any) string) Field {
	f := requiredStrings("headers", func(v any) string {
		if s := v.(string); strings.IndexByte(s, ':') < 1 {
			return "invalid value: " + s
		}
		return check(v)
	})
	f.Elements.Extra = map[string]any{"match": "^[^:]+:.*$"}
	return f
}

// colonStrings are "name:value" entries (the schema's ^[^:]+:.*$), then
// check when not nil.
func colonStrings(name string, check func(any) string) Field {
	f := requiredStrings(name, func(v any) string {
		if s := v.(string); strings.IndexByte(s, ':') < 1 {
			return "invalid value: " + s
		}
		if check != nil {
			return check(v)
		}
		return ""
	})
	f.Elements.Extra = map[string]any{"match": "^[^:]+:.*$"}
	return f
}

// jsonColonRecordFields are response-transformer's colon_string_record:
// JSON fields with the types of their values, and headers.
func jsonColonRecordFields() []Field {
	return []Field{colonStrings("json", nil),
		{Name: "json_types", Type: TypeArray, Required: true, Default: []any{},
			Elements: &Field{Type: TypeString, OneOf: []any{"boolean", "number", "string"}}},
		colonStrings("headers", nil)}
}

func colonRecordFields() []Field {
	return []Field{requiredStrings("body", checkTransformValue), colonHeaders(checkTransformHeader),
		requiredStrings("querystring", checkTransformValue)}
}

// splitPair splits "name:value" as the schema's pattern ^([^:]+):*(.-)$.
func splitPair(s string) (string, string, bool) {
	i := strings.IndexByte(s, ':')
	if i == 0 {
		return "", "", false
	}
	if i < 0 {
		return s, "", true
	}
	return s[:i], strings.TrimLeft(s[i:], ":"), true
}

// checkTransformValue is request-transformer's check_for_value: a
// value, which must compile as a template.
func checkTransformValue(v any) string {
	name, value, ok := splitPair(v.(string))
	if !ok || value == "" {
		return "key '" + name + "' has no value"
	}
	if _, err := luasandbox.CompileTemplate(value); err != nil {
		return "value '" + value + "' is not in supported format, error:" + err.Error()
	}
	return ""
}

// checkTransformHeader is validate_headers: the name is a header name;
// a colon entry must have its colon.
func checkTransformHeader(v any) string {
	name, _, ok := splitPair(v.(string))
	if !ok || !headerNameRe.MatchString(name) {
		return "'" + name + "' is not a valid header"
	}
	return ""
}

// checkTransformHeaderPair is validate_colon_headers: both sides of a
// rename are header names.
func checkTransformHeaderPair(v any) string {
	if msg := checkTransformHeader(v); msg != "" {
		return msg
	}
	_, value, _ := splitPair(v.(string))
	if !headerNameRe.MatchString(value) {
		return "'" + value + "' is not a valid header"
	}
	return ""
}

func requestTerminationConfig() Field {
	f := configField(
		Field{Name: "status_code", Type: TypeInteger, Required: true, Default: int64(503), Between: []int64{100, 599}},
		str("message"),
		str("content_type"),
		str("body"),
		boolField("echo", false),
		headerNameField("trigger"),
	)
	f.RecordCheck = checkTermination
	return f
}

// checkTermination is request-termination's custom_validator.
func checkTermination(c map[string]any) string {
	present := func(k string) bool { s, _ := c[k].(string); return s != "" }
	switch {
	case present("message") && (present("content_type") || present("body")):
		return "message cannot be used with content_type or body"
	case present("content_type") && !present("body"):
		return "content_type requires a body"
	case c["echo"] == true && (present("content_type") || present("body")):
		return "echo cannot be used with content_type and body"
	}
	return ""
}

var logPathRe = regexp.MustCompile("^[^*&%\\\\`]+$")

func checkLogPath(v any) string {
	if !logPathRe.MatchString(v.(string)) {
		return "not a valid filename"
	}
	return ""
}
