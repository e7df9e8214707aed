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
