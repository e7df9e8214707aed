package entity

// The authentication and authorisation plugins' schemas
// (kong/plugins/{key-auth,basic-auth,hmac-auth,jwt,acl}/schema.lua) and
// their handlers' PRIORITY.
func init() {
	registerPlugin("key-auth", 1250, []Field{noConsumer(), httpProtocolsField(), configField(
		Field{Name: "key_names", Type: TypeArray, Required: true, Default: []any{"apikey"},
			Elements: &Field{Type: TypeString, Check: checkPluginHeaderName}},
		boolField("hide_credentials", false),
		str("anonymous"),
		boolField("key_in_header", true),
		boolField("key_in_query", true),
		boolField("key_in_body", false),
		boolField("run_on_preflight", true),
		str("realm"),
	)})
	registerPlugin("basic-auth", 1100, []Field{noConsumer(), httpProtocolsField(), configField(
		str("anonymous"),
		boolField("hide_credentials", false),
		Field{Name: "realm", Type: TypeString, Required: true, Default: "service"},
	)})
	registerPlugin("hmac-auth", 1030, []Field{noConsumer(), httpProtocolsField(), configField(
		boolField("hide_credentials", false),
		Field{Name: "clock_skew", Type: TypeNumber, Default: int64(300), Gt: gt(0)},
		str("anonymous"),
		boolField("validate_request_body", false),
		stringArray("enforce_headers", []any{}),
		Field{Name: "algorithms", Type: TypeArray, Default: hmacAlgorithms,
			Elements: &Field{Type: TypeString, OneOf: hmacAlgorithms}},
		str("realm"),
	)})
	registerPlugin("jwt", 1450, []Field{noConsumer(), httpProtocolsField(), configField(
		stringSet("uri_param_names", []any{"jwt"}),
		stringSet("cookie_names", []any{}),
		strDefault("key_claim_name", "iss"),
		boolField("secret_is_base64", false),
		Field{Name: "claims_to_verify", Type: TypeSet, Elements: &Field{Type: TypeString, OneOf: []any{"exp", "nbf"}}},
		str("anonymous"),
		boolField("run_on_preflight", true),
		Field{Name: "maximum_expiration", Type: TypeNumber, Default: int64(0), Between: []int64{0, 31536000}},
		stringSet("header_names", []any{"authorization"}),
		str("realm"),
	)}, Conditional{If: "config.maximum_expiration", IfMatch: Match{Gt: gt(0)},
		Then: "config.claims_to_verify", ThenMatch: Match{Contains: "exp"}})
	registerPlugin("acl", 950, []Field{noConsumer(), httpProtocolsField(), configField(
		stringArray("allow", nil),
		stringArray("deny", nil),
		boolField("hide_groups_header", false),
		boolField("always_use_authenticated_groups", false),
	)}, OnlyOneOf{"config.allow", "config.deny"}, AtLeastOneOf{"config.allow", "config.deny"})
}

var hmacAlgorithms = []any{"hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"}
