package entity

import (
	"sort"
	"strconv"
	"strings"
)

// CacheKeyOf is the value of the store's unique cache_key column for a
// validated document: the CacheKey fields rendered as Kong prints them in
// its unique violation, {consumer=null,name="acl",route={id="…"},...},
// keys in order. Equal scopes give equal strings, so the column's unique
// index is Kong's one-instance-per-scope rule. "" if the schema has no
// composite cache key.
func CacheKeyOf(s *Schema, doc map[string]any) string {
	if len(s.CacheKey) < 2 {
		return ""
	}
	keys := append([]string(nil), s.CacheKey...)
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + luaValue(cacheKeyValue(s, doc, k))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// cacheKeyValue is a field's part of the key: a reference's id only.
func cacheKeyValue(s *Schema, doc map[string]any, field string) any {
	v := doc[field]
	if f := s.Field(field); f != nil && f.Type == TypeForeign {
		if m, ok := v.(map[string]any); ok {
			return map[string]any{"id": m["id"]}
		}
		return nil
	}
	return v
}

func luaValue(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(t)
	case map[string]any:
		id, _ := t["id"].(string)
		return "{id=" + strconv.Quote(id) + "}"
	}
	return strconv.Quote(toString(v))
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return joinValues([]any{v})
}

// CacheKeyViolation is code 5 for a composite cache key: another entity
// has the same values of every CacheKey field (kong/db/strategies/postgres
// toerror). fields holds each value, a reference as {"id": …}.
func CacheKeyViolation(s *Schema, doc map[string]any) *Error {
	e := newError(CodeUniqueViolation, "UNIQUE violation detected on '"+CacheKeyOf(s, doc)+"'")
	fields := FieldErrors{}
	for _, k := range s.CacheKey {
		fields[k] = cacheKeyValue(s, doc, k)
	}
	e.Fields = fields
	return e
}
