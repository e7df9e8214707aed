package entity

// ip-restriction's schema (kong/plugins/ip-restriction/schema.lua) and its
// handler's PRIORITY.
func init() {
	registerPlugin("ip-restriction", 990, []Field{
		{Name: "protocols", Type: TypeSet, Required: true,
			Default:  []any{"http", "https", "tcp", "tls", "grpc", "grpcs"},
			Elements: &Field{Type: TypeString, OneOf: protocolNames}},
		configField(
			Field{Name: "allow", Type: TypeArray, Elements: &Field{Type: TypeString, Check: checkIPOrCIDR}},
			Field{Name: "deny", Type: TypeArray, Elements: &Field{Type: TypeString, Check: checkIPOrCIDR}},
			Field{Name: "status", Type: TypeNumber},
			Field{Name: "message", Type: TypeString},
		),
	}, AtLeastOneOf{"config.allow", "config.deny"})
}

// correlation-id's and request-size-limiting's schemas
// (kong/plugins/{correlation-id,request-size-limiting}/schema.lua) and
// their handlers' PRIORITY.
func init() {
	registerPlugin("correlation-id", 100001, []Field{httpProtocolsField(), configField(
		strDefault("header_name", "Kong-Request-ID"),
		Field{Name: "generator", Type: TypeString, Required: true, Default: "uuid#counter",
			OneOf: []any{"uuid", "uuid#counter", "tracker"}},
		boolField("echo_downstream", false),
	)})
	registerPlugin("request-size-limiting", 951, []Field{httpProtocolsField(), configField(
		Field{Name: "allowed_payload_size", Type: TypeInteger, Default: int64(128)},
		Field{Name: "size_unit", Type: TypeString, Required: true, Default: "megabytes",
			OneOf: []any{"megabytes", "kilobytes", "bytes"}},
		boolField("require_content_length", false),
	)})
}
