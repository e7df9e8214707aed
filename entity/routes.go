package entity

import (
	"sort"
	"strings"
)

// Routes is Kong's routes schema for the traditional_compatible router
// (kong/db/schema/entities/routes.lua and routes_subschemas.lua).
var Routes = &Schema{
	Name:        "routes",
	EndpointKey: "name",
	Fields: []Field{
		uuidField("id"),
		timestampField("created_at"),
		timestampField("updated_at"),
		utf8NameField("name"),
		{Name: "protocols", Type: TypeSet, Required: true, LenMin: 1, Default: []any{"http", "https"},
			Elements: &Field{Type: TypeString, Required: true, OneOf: protocolNames}},
		{Name: "https_redirect_status_code", Type: TypeInteger, Required: true, Default: int64(426),
			OneOf: []any{int64(426), int64(301), int64(302), int64(307), int64(308)}},
		{Name: "strip_path", Type: TypeBoolean, Required: true, Default: true},
		{Name: "preserve_host", Type: TypeBoolean, Required: true, Default: false},
		{Name: "request_buffering", Type: TypeBoolean, Required: true, Default: true},
		{Name: "response_buffering", Type: TypeBoolean, Required: true, Default: true},
		tagsField(),
		{Name: "service", Type: TypeForeign, Reference: "services"},
		{Name: "methods", Type: TypeSet, Elements: &Field{Type: TypeString, Check: checkMethod}},
		{Name: "hosts", Type: TypeArray, Elements: &Field{Type: TypeString, Check: checkWildcardHost}},
		{Name: "paths", Type: TypeArray, Elements: &Field{Type: TypeString, Check: checkRouterPath}},
		{Name: "headers", Type: TypeMap, Keys: &Field{Type: TypeString, Check: checkHeaderName},
			Values: &Field{Type: TypeArray, Elements: &Field{Type: TypeString}}},
		{Name: "regex_priority", Type: TypeInteger, Default: int64(0)},
		{Name: "path_handling", Type: TypeString, Default: "v0", OneOf: []any{"v0", "v1"}},
		{Name: "snis", Type: TypeSet, Elements: &Field{Type: TypeString, Check: checkSNI}},
		cidrPortsField("sources"),
		cidrPortsField("destinations"),
	},
	Prepare: prepareRoute,
	Checks: []Check{
		MutuallyExclusiveSubsets{Field: "protocols", Subsets: protocolSubsets},
		CustomCheck(checkRouteMatchers),
		Conditional{If: "protocols", IfMatch: Match{ElementsNotOneOf: []any{"grpcs", "https", "tls", "tls_passthrough"}},
			Then: "snis", ThenMatch: Match{Null: true, Len0: true},
			ThenErr: "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'"},
	},
}

func cidrPortsField(name string) Field {
	return Field{Name: name, Type: TypeSet, Elements: &Field{Type: TypeRecord, Fields: []Field{
		{Name: "ip", Type: TypeString, Check: checkIPOrCIDR},
		portField("port", nil, false),
	}}}
}

var protocolSubsets = [][]string{{"http", "https"}, {"tcp", "tls", "udp"}, {"tls_passthrough"}, {"grpc", "grpcs"}}

func stringsToAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// firstProtocol picks the subschema the way Kong does: by the first protocol.
func firstProtocol(v any) string {
	if list, ok := v.([]any); ok && len(list) > 0 {
		s, _ := list[0].(string)
		return s
	}
	return ""
}

// prepareRoute applies the grpc subschema default strip_path = false.
func prepareRoute(doc map[string]any) {
	if _, set := doc["strip_path"]; set {
		return
	}
	if p := firstProtocol(doc["protocols"]); p == "grpc" || p == "grpcs" {
		doc["strip_path"] = false
	}
}

// checkRouteMatchers is the per-protocol part of Kong's routes
// subschemas: which matchers a route must and must not set.
func checkRouteMatchers(doc map[string]any, fe FieldErrors) {
	protos := protocolSet(doc["protocols"])
	switch {
	case protos["http"] || protos["https"]:
		checkHTTPRoute(doc, protos, fe)
	case protos["grpc"] || protos["grpcs"]:
		checkGRPCRoute(doc, protos, fe)
	default:
		checkStreamRoute(doc, protos, fe)
	}
}

func protocolSet(v any) map[string]bool {
	out := map[string]bool{}
	list, _ := v.([]any)
	for _, p := range list {
		if s, ok := p.(string); ok {
			out[s] = true
		}
	}
	return out
}

func checkHTTPRoute(doc map[string]any, protos map[string]bool, fe FieldErrors) {
	forbid(doc, fe, "cannot set '%s' when 'protocols' is 'http' or 'https'", "sources", "destinations")
	if len(fe) > 0 {
		return
	}
	if protos["https"] {
		atLeastOne(doc, fe, "https", "methods", "hosts", "headers", "paths", "snis")
		return
	}
	atLeastOne(doc, fe, "http", "methods", "hosts", "headers", "paths")
}

func checkGRPCRoute(doc map[string]any, protos map[string]bool, fe FieldErrors) {
	if doc["strip_path"] == true {
		fe["strip_path"] = "cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'"
	}
	forbid(doc, fe, "cannot set '%s' when 'protocols' is 'grpc' or 'grpcs'", "methods", "sources", "destinations")
	if len(fe) > 0 {
		return
	}
	if protos["grpcs"] {
		atLeastOne(doc, fe, "grpcs", "hosts", "headers", "paths", "snis")
		return
	}
	atLeastOne(doc, fe, "grpc", "hosts", "headers", "paths")
}

func checkStreamRoute(doc map[string]any, protos map[string]bool, fe FieldErrors) {
	forbid(doc, fe, "cannot set '%s' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'",
		"methods", "hosts", "paths", "headers")
	if len(fe) > 0 {
		return
	}
	if protos["tls_passthrough"] {
		if isEmpty(doc["snis"]) {
			fe.Entity("must set snis when 'protocols' is 'tls_passthrough'")
		}
		return
	}
	if isEmpty(doc["sources"]) && isEmpty(doc["destinations"]) && isEmpty(doc["snis"]) {
		fe.Entity("must set one of 'sources', 'destinations', 'snis' when 'protocols' is 'tcp', 'tls' or 'udp'")
	}
}

func forbid(doc map[string]any, fe FieldErrors, format string, fields ...string) {
	for _, f := range fields {
		if !isEmpty(doc[f]) {
			fe[f] = strings.Replace(format, "%s", f, 1)
		}
	}
}

func atLeastOne(doc map[string]any, fe FieldErrors, proto string, fields ...string) {
	for _, f := range fields {
		if !isEmpty(doc[f]) {
			return
		}
	}
	fe.Entity("must set one of '" + strings.Join(fields, "', '") + "' when 'protocols' is '" + proto + "'")
}

// sortedKeys returns a map's keys in order (deterministic output).
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
