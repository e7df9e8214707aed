package entity

// consumerField is the consumer every credential belongs to: required,
// and deleted with it (the credential daos in kong/plugins/*/daos.lua).
func consumerField() Field {
	return Field{Name: "consumer", Type: TypeForeign, Reference: "consumers", Required: true, OnDelete: OnDeleteCascade}
}

// credentialFields are the fields every credential starts with: no
// updated_at, as in Kong.
func credentialFields(rest ...Field) []Field {
	out := []Field{uuidField("id"), timestampField("created_at"), consumerField()}
	out = append(out, rest...)
	return append(out, tagsField())
}

// autoString is a string Kong fills with a random value when left out.
func autoString(name string, unique bool) Field {
	f := Field{Name: name, Type: TypeString, Auto: true, Unique: unique}
	if unique {
		f.MaxBytes = MaxIndexedBytes
	}
	return f
}

// Credential is the part every credential shares; the kinds' documents
// carry more fields, kept as stored.
type Credential struct {
	ID        string      `json:"id"`
	CreatedAt int64       `json:"created_at"`
	Consumer  *ForeignKey `json:"consumer"`
	Tags      []string    `json:"tags"`
}
