package entity

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// MaxTTL is Kong's DAO_MAX_TTL (kong/constants.lua): the largest ttl, in
// seconds, a write may give an entity whose schema has TTL.
const MaxTTL = 100000000

// ttlMessage is Kong's message for a bad ttl (kong/db/dao/init.lua,
// validate_options_value).
var ttlMessage = "must be an integer between 0 and " + strconv.Itoa(MaxTTL)

// takeTTL removes the ttl option from a write's document of s and returns
// it: Kong's Admin API (kong/api/endpoints.lua extract_options) moves
// "ttl" out of the arguments into the DAO's options on insert, update and
// upsert of a kind whose schema has ttl = true. Kong checks options before
// the entity, so a bad ttl is its invalid-options error (code 11) alone.
// For other kinds "ttl" stays and is an unknown field, as in Kong.
func (s *Schema) takeTTL(doc map[string]any) (ttl int64, given bool, err *Error) {
	if !s.TTL {
		return 0, false, nil
	}
	v, ok := doc["ttl"]
	if !ok {
		return 0, false, nil
	}
	delete(doc, "ttl")
	if v == nil {
		return 0, false, nil
	}
	n, ok := ttlSeconds(v)
	if !ok {
		return 0, false, InvalidOptions("ttl", ttlMessage)
	}
	return n, true, nil
}

// ttlSeconds reads a ttl given as a JSON number, or as a form's text.
func ttlSeconds(v any) (int64, bool) {
	if s, ok := v.(string); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		return wholeUpTo(f, MaxTTL, err == nil)
	}
	f, ok := numberOf(v)
	return wholeUpTo(f, MaxTTL, ok)
}

// numberOf is v as a float when it is a decoded number.
func numberOf(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	}
	return 0, false
}

// wholeUpTo is f as an integer when ok and f is a whole number from 0 to
// limit.
func wholeUpTo(f, limit float64, ok bool) (int64, bool) {
	if !ok || f != math.Floor(f) || f < 0 || f > limit {
		return 0, false
	}
	return int64(f), true
}

// Expiry is when an entity of a TTL kind expires, in Unix seconds: Kong's
// "ttl" as a declarative file holds it. Kong's export writes the expiry
// itself, not the seconds left (FLOOR(EXTRACT(EPOCH FROM ttl)) in
// kong/db/strategies/postgres/init.lua, select_for_export_expressions),
// and a DB-less node reads it so (entity.ttl - ngx.time() in
// kong/db/strategies/off/init.lua). A validated document holding an
// Expiry asks the store for that expiry, where an integer "ttl" is the
// Admin API's seconds from the write.
type Expiry int64

// maxExpiry bounds an Expiry read from a file: far beyond any real one.
const maxExpiry = math.MaxInt32 * 4

// ExpiryOf reads a declarative file's ttl, a number (never text) of
// whole Unix seconds.
func ExpiryOf(v any) (Expiry, bool) {
	f, ok := numberOf(v)
	at, ok := wholeUpTo(f, maxExpiry, ok)
	return Expiry(at), ok
}
