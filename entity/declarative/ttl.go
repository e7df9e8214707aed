package declarative

import (
	"github.com/grapevine-gw/grapevine/entity"
)

// takeExpiry takes the "ttl" of an entity of a TTL kind out of its record
// before validation: in a declarative file it is the Unix time the entity
// expires, as Kong's export writes it and its DB-less mode reads it
// (entity.Expiry), not the Admin API's seconds from now. ok is false for
// a ttl that is not a whole number of seconds; expiry is nil for none.
func takeExpiry(k *entity.Kind, in map[string]any) (expiry *entity.Expiry, ok bool) {
	v, given := in["ttl"]
	if !k.Schema.TTL || !given {
		return nil, true
	}
	delete(in, "ttl")
	if v == nil {
		return nil, true
	}
	at, ok := entity.ExpiryOf(v)
	if !ok {
		return nil, false
	}
	return &at, true
}

// expiryMessage is the error for a ttl takeExpiry refuses.
const expiryMessage = "expected an integer: the Unix time the entity expires, as Kong's export writes it"
