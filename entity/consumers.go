package entity

// Consumers is Kong's consumers schema
// (kong/db/schema/entities/consumers.lua): named by username, and by a
// custom_id that GET /consumers?custom_id= finds.
var Consumers = &Schema{
	Name:        "consumers",
	EndpointKey: "username",
	Fields: []Field{
		uuidField("id"),
		timestampField("created_at"),
		timestampField("updated_at"),
		{Name: "username", Type: TypeString, Unique: true, MaxBytes: MaxIndexedBytes},
		{Name: "custom_id", Type: TypeString, Unique: true, MaxBytes: MaxIndexedBytes},
		tagsField(),
	},
	Checks: []Check{AtLeastOneOf{"custom_id", "username"}},
}

// Consumer is Kong's consumer entity: who a request is authenticated as.
type Consumer struct {
	ID        string   `json:"id"`
	CreatedAt int64    `json:"created_at"`
	UpdatedAt int64    `json:"updated_at"`
	Username  *string  `json:"username"`
	CustomID  *string  `json:"custom_id"`
	Tags      []string `json:"tags"`
}
