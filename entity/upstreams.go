package entity

import "fmt"

// Upstreams is Kong's upstreams schema (kong/db/schema/entities/upstreams.lua):
// a virtual host name that services point at, the balancing algorithm
// and its hashing inputs, the ring's slots and the health checks.
var Upstreams = &Schema{
	Name:        "upstreams",
	EndpointKey: "name",
	Fields: []Field{
		uuidField("id"),
		timestampField("created_at"),
		{Name: "name", Type: TypeString, Required: true, Unique: true, Check: checkUpstreamName, MaxBytes: MaxIndexedBytes},
		timestampField("updated_at"),
		{Name: "algorithm", Type: TypeString, Default: "round-robin",
			OneOf: []any{"consistent-hashing", "least-connections", "round-robin", "latency"}},
		hashOnField("hash_on"),
		hashOnField("hash_fallback"),
		{Name: "hash_on_header", Type: TypeString, Check: checkHTTPHeaderName},
		{Name: "hash_fallback_header", Type: TypeString, Check: checkHTTPHeaderName},
		{Name: "hash_on_cookie", Type: TypeString, Check: checkHTTPToken},
		{Name: "hash_on_cookie_path", Type: TypeString, Default: "/", StartsWith: "/", Check: checkPath},
		simpleParamField("hash_on_query_arg"),
		simpleParamField("hash_fallback_query_arg"),
		simpleParamField("hash_on_uri_capture"),
		simpleParamField("hash_fallback_uri_capture"),
		{Name: "slots", Type: TypeInteger, Default: int64(10000), Between: []int64{10, 1 << 16}},
		{Name: "healthchecks", Type: TypeRecord, Default: healthchecksDefault(), Fields: healthchecksFields()},
		tagsField(),
		{Name: "host_header", Type: TypeString, Check: checkHostWithOptionalPort},
		{Name: "client_certificate", Type: TypeForeign, Reference: "certificates"},
		{Name: "use_srv_name", Type: TypeBoolean, Default: false},
	},
	Input:  upstreamShorthands,
	Checks: upstreamChecks(),
}

var hashOnValues = []any{"none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"}

func hashOnField(name string) Field {
	return Field{Name: name, Type: TypeString, Default: "none", OneOf: hashOnValues}
}

func simpleParamField(name string) Field {
	return Field{Name: name, Type: TypeString, LenMin: 1}
}

// upstreamChecks are Kong's entity checks of upstreams, in its order:
// each hash input named when hashed on, the fallback never the same
// input as hash_on, and the two headers, query args and captures distinct.
func upstreamChecks() []Check {
	required := func(ifField, is, then string) Check {
		return Conditional{If: ifField, IfMatch: Match{Is: is}, Then: then, ThenMatch: Match{Required: true}}
	}
	fallbackOneOf := func(is string, allowed ...string) Check {
		return Conditional{If: "hash_on", IfMatch: Match{Is: is}, Then: "hash_fallback", ThenMatch: Match{OneOf: stringsToAny(allowed)}}
	}
	return []Check{
		required("hash_on", "header", "hash_on_header"),
		required("hash_fallback", "header", "hash_fallback_header"),
		required("hash_on", "cookie", "hash_on_cookie"),
		required("hash_fallback", "cookie", "hash_on_cookie"),
		fallbackOneOf("none", "none"),
		fallbackOneOf("cookie", "none"),
		fallbackOneOf("consumer", "none", "ip", "header", "cookie", "path", "query_arg", "uri_capture"),
		fallbackOneOf("ip", "none", "consumer", "header", "cookie", "path", "query_arg", "uri_capture"),
		fallbackOneOf("path", "none", "consumer", "header", "cookie", "query_arg", "ip", "uri_capture"),
		Distinct{"hash_on_header", "hash_fallback_header"},
		required("hash_on", "query_arg", "hash_on_query_arg"),
		required("hash_fallback", "query_arg", "hash_fallback_query_arg"),
		Distinct{"hash_on_query_arg", "hash_fallback_query_arg"},
		required("hash_on", "uri_capture", "hash_on_uri_capture"),
		required("hash_fallback", "uri_capture", "hash_fallback_uri_capture"),
		Distinct{"hash_on_uri_capture", "hash_fallback_uri_capture"},
	}
}

// upstreamShorthands are Kong's two shorthand fields of upstreams, which
// keep algorithm and hash_on consistent with what the client sent:
// least-connections and latency hash on nothing, a hash_on other than
// none means consistent-hashing, and hash_on none means round-robin. They
// apply to the request body only (so a PATCH of other fields leaves a
// least-connections upstream alone), in Kong's order.
func upstreamShorthands(in map[string]any) {
	if alg, ok := in["algorithm"].(string); ok && (alg == "least-connections" || alg == "latency") {
		in["hash_on"] = nil
	}
	v, present := in["hash_on"]
	switch hashOn, isString := v.(string); {
	case !present:
	case v == nil:
		in["hash_on"] = "none"
	case !isString:
		// left for the field's own type check
	case hashOn == "none":
		in["algorithm"] = "round-robin"
	default:
		in["algorithm"] = "consistent-hashing"
	}
}

// checkUpstreamName: an upstream's name is a host name, not an address,
// without a port (Kong's validate_name).
func checkUpstreamName(v any) string {
	s := v.(string)
	quoted := "Invalid name"
	if checkUTF8(s) == "" {
		quoted = "Invalid name ('" + s + "')"
	}
	a, err := parseHostAddr(s)
	switch {
	case err != "":
		return quoted + "; must be a valid hostname"
	case a.kind != addrName:
		return quoted + "; no ip addresses allowed"
	case a.hasPort:
		return quoted + "; no port allowed"
	}
	return ""
}

// checkHostWithOptionalPort is typedefs.host_with_optional_port.
func checkHostWithOptionalPort(v any) string {
	_, err := parseHostAddr(v.(string))
	return err
}

// checkHTTPHeaderName is Kong's validate_header_name (kong/tools/http.lua).
func checkHTTPHeaderName(v any) string {
	s := v.(string)
	if s == "" {
		return "no header name provided"
	}
	if !headerNameRe.MatchString(s) {
		return fmt.Sprintf("bad header name '%s', allowed characters are A-Z, a-z, 0-9, '_', and '-'", s)
	}
	return ""
}

// checkHTTPToken is Kong's validate_http_token, its cookie name rule.
func checkHTTPToken(v any) string {
	s := v.(string)
	if s == "" {
		return "no token provided"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 32 || c == 127 || c == ' ' || c == '\t' || containsByte(`()<>@,;:\"/?={}[]`, c) {
			return "contains one or more invalid characters. ASCII control characters (0-31;127), " +
				"space, tab and the characters ()<>@,;:\\\"/?={}[] are not allowed."
		}
	}
	return ""
}

func containsByte(set string, c byte) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == c {
			return true
		}
	}
	return false
}

// Health check inputs (the typed fields of Kong's gen_fields).
func checkTypeField(def any) Field {
	return Field{Name: "type", Type: TypeString, Default: def, OneOf: []any{"tcp", "http", "https", "grpc", "grpcs"}}
}

func secondsField(name string, def any) Field {
	return Field{Name: name, Type: TypeNumber, Default: def, Between: []int64{0, 65535}}
}

func counterField(name string) Field {
	return Field{Name: name, Type: TypeInteger, Default: int64(0), Between: []int64{0, 255}}
}

func statusesField(codes ...int64) Field {
	def := make([]any, len(codes))
	for i, c := range codes {
		def[i] = c
	}
	return Field{Name: "http_statuses", Type: TypeArray, Default: def,
		Elements: &Field{Type: TypeInteger, Between: []int64{100, 999}}}
}

// recordField is a health check record whose default is its fields'
// defaults, as Kong's gen_fields builds them.
func recordField(name string, fields ...Field) Field {
	return Field{Name: name, Type: TypeRecord, Default: recordDefault(fields), Fields: fields}
}

func recordDefault(fields []Field) map[string]any {
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		if f.Default != nil {
			out[f.Name] = cloneJSON(f.Default)
		}
	}
	return out
}

// healthchecksFields are Kong 3.9's healthchecks record with its exact
// defaults: probing and circuit breaking are off (intervals and counters
// 0) until configured.
func healthchecksFields() []Field {
	active := recordField("active",
		checkTypeField("http"),
		secondsField("timeout", int64(1)),
		Field{Name: "concurrency", Type: TypeInteger, Default: int64(10), Between: []int64{1, 1 << 31}},
		Field{Name: "http_path", Type: TypeString, Default: "/", StartsWith: "/", Check: checkPath},
		Field{Name: "https_sni", Type: TypeString, Check: checkSNI},
		Field{Name: "https_verify_certificate", Type: TypeBoolean, Default: true, Required: true},
		Field{Name: "headers", Type: TypeMap, Keys: &Field{Type: TypeString, Check: checkHTTPHeaderName},
			Values: &Field{Type: TypeArray, Elements: &Field{Type: TypeString}}},
		recordField("healthy",
			secondsField("interval", int64(0)),
			statusesField(200, 302),
			counterField("successes")),
		recordField("unhealthy",
			secondsField("interval", int64(0)),
			statusesField(429, 404, 500, 501, 502, 503, 504, 505),
			counterField("tcp_failures"),
			counterField("timeouts"),
			counterField("http_failures")),
	)
	passive := recordField("passive",
		checkTypeField("http"),
		recordField("healthy",
			statusesField(200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
				300, 301, 302, 303, 304, 305, 306, 307, 308),
			counterField("successes")),
		recordField("unhealthy",
			statusesField(429, 500, 503),
			counterField("tcp_failures"),
			counterField("timeouts"),
			counterField("http_failures")),
	)
	threshold := Field{Name: "threshold", Type: TypeNumber, Default: int64(0), Between: []int64{0, 100}}
	return []Field{active, passive, threshold}
}

// healthchecksDefault is the healthchecks field's default. Kong's
// threshold has its own default but is not part of the record's
// default; validation fills it in all the same.
func healthchecksDefault() map[string]any {
	fields := healthchecksFields()
	return recordDefault(fields[:2])
}

// Upstream is Kong's upstream entity: a virtual host balanced over its
// targets.
type Upstream struct {
	ID                     string         `json:"id"`
	CreatedAt              int64          `json:"created_at"`
	UpdatedAt              int64          `json:"updated_at"`
	Name                   string         `json:"name"`
	Algorithm              string         `json:"algorithm"`
	HashOn                 string         `json:"hash_on"`
	HashFallback           string         `json:"hash_fallback"`
	HashOnHeader           *string        `json:"hash_on_header"`
	HashFallbackHeader     *string        `json:"hash_fallback_header"`
	HashOnCookie           *string        `json:"hash_on_cookie"`
	HashOnCookiePath       string         `json:"hash_on_cookie_path"`
	HashOnQueryArg         *string        `json:"hash_on_query_arg"`
	HashFallbackQueryArg   *string        `json:"hash_fallback_query_arg"`
	HashOnURICapture       *string        `json:"hash_on_uri_capture"`
	HashFallbackURICapture *string        `json:"hash_fallback_uri_capture"`
	Slots                  int            `json:"slots"`
	Healthchecks           map[string]any `json:"healthchecks"`
	Tags                   []string       `json:"tags"`
	HostHeader             *string        `json:"host_header"`
	ClientCertificate      *ForeignKey    `json:"client_certificate"`
	UseSRVName             bool           `json:"use_srv_name"`
}
