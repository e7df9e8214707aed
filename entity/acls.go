package entity

// ACLs is acl's credential (kong/plugins/acl/daos.lua): a group a consumer
// is in, at most once per consumer. Under /consumers/{c}/acls/{x} an x
// that is not a UUID names the group (kong/plugins/acl/api.lua).
var ACLs = &Schema{
	Name:     "acls",
	CacheKey: []string{"consumer", "group"},
	Fields: credentialFields(
		Field{Name: "group", Type: TypeString, Required: true},
	),
}

// ACL is one group of a consumer.
type ACL struct {
	Credential
	Group string `json:"group"`
}
