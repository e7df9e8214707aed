package declarative

import (
	"encoding/json"
	"math"

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
	var f float64
	switch x := v.(type) {
	case nil:
		return nil, true
	case int64:
		f = float64(x)
	case int:
		f = float64(x)
	case float64:
		f = x
	case json.Number:
		g, err := x.Float64()
		if err != nil {
			return nil, false
		}
		f = g
	default:
		return nil, false
	}
	if f != math.Floor(f) || f < 0 || f > math.MaxInt32*4 {
		return nil, false
	}
	at := entity.Expiry(f)
	return &at, true
}

// expiryMessage is the error for a ttl takeExpiry refuses.
const expiryMessage = "expected an integer: the Unix time the entity expires, as Kong's export writes it"
