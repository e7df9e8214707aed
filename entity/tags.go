package entity

// Tags is Kong's tags schema (kong/db/schema/entities/tags.lua): not a kind
// of its own, since GET /tags reads the tags of every kind, but its schema
// is served at GET /schemas/tags as Kong serves it.
var Tags = &Schema{
	Name:        "tags",
	EndpointKey: "tag",
	Fields: []Field{
		{Name: "tag", Type: TypeString, Required: true, Check: checkTag, MaxBytes: MaxIndexedBytes},
		{Name: "entity_name", Type: TypeString, Required: true},
		{Name: "entity_id", Type: TypeString, UUID: true, Required: true},
	},
}
