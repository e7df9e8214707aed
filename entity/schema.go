package entity

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// Type is a Kong schema field type.
type Type string

// Kong's field types.
const (
	TypeString  Type = "string"
	TypeInteger Type = "integer"
	TypeNumber  Type = "number"
	TypeBoolean Type = "boolean"
	TypeArray   Type = "array"
	TypeSet     Type = "set"
	TypeMap     Type = "map"
	TypeRecord  Type = "record"
	TypeForeign Type = "foreign"
)

// Field is one schema field. Validators run in Kong's order: type, length,
// range, one_of, starts_with, match rules, custom validator.
type Field struct {
	Name       string
	Type       Type
	Default    any // JSON value; nil = no default
	Required   bool
	Unique     bool
	Auto       bool
	UUID       bool
	Timestamp  bool
	OneOf      []any
	Between    []int64
	LenMin     int
	StartsWith string
	// MaxBytes, when set, bounds a string's length in bytes (Grapevine's
	// rule for indexed strings; see MaxIndexedBytes).
	MaxBytes  int
	Elements  *Field
	Keys      *Field
	Values    *Field
	Fields    []Field // record sub-fields
	Reference string  // foreign: referenced table
	// OnDelete is a foreign field's on_delete rule; "" is Kong's default,
	// restrict.
	OnDelete OnDelete
	// Check is a custom validator of a non-nil, well-typed value (a
	// record's once its fields are valid); it returns Kong's message or "".
	Check func(v any) string
	// Transient is a field Kong accepts and validates but does not store
	// (a certificate's snis): the admin package hands it to the kind's
	// own code and leaves it out of the stored document.
	Transient bool
	// Extra holds attributes rendered by GET /schemas only (e.g. match rules).
	Extra map[string]any
	// Gt, when set, is Kong's gt: a number must be greater than it.
	Gt *float64
	// MustBeNull is Kong's eq = null (typedefs.no_consumer: a plugin that
	// cannot be scoped to a consumer).
	MustBeNull bool
	// RecordCheck is a record's custom validator, run once its fields
	// are valid; it returns Kong's message or "".
	RecordCheck func(rec map[string]any) string
	// Abstract is a field a subschema specialises (a plugin's config):
	// without one, any value of the type is kept as given.
	Abstract bool
	// Shorthands are a record's deprecated input-only fields (Kong's
	// shorthand_fields with deprecation.replaced_with).
	Shorthands []RecordShorthand
}

// RecordShorthand is a deprecated name for a field inside a record (a
// plugin's config.redis_host for config.redis.host): accepted on input,
// its value moved to Path unless the field there is set (then the two
// must agree), and rendered by GET /schemas as Kong's shorthand_fields.
type RecordShorthand struct {
	Name    string
	Type    Type
	LenMin  *int // rendered when set (Kong's len_min = 0 of a password)
	Path    []string
	Message string // deprecation.message
}

// gt returns a Gt value.
func gt(n float64) *float64 { return &n }

// Shorthand is an input-only field rewritten into real fields (service url).
type Shorthand struct {
	Name   string
	Type   Type
	Expand func(v any, doc map[string]any) string // returns an error message or ""
}

// Schema describes one entity kind the way Kong's DAO schema does.
type Schema struct {
	Name        string // table / path name, e.g. "services"
	EndpointKey string // lookup key besides the id, e.g. "name"
	// KeyScope, when set, names the foreign field within whose parent the
	// endpoint key is unique (Kong's composite cache_key: a target is
	// unique per upstream); the key then names an entity only under that
	// parent's path.
	KeyScope   string
	Fields     []Field
	Shorthands []Shorthand
	// Prepare adjusts defaults that depend on other input (subschemas).
	Prepare func(doc map[string]any)
	// Input rewrites a client's request body once, before it is merged
	// or validated: Kong's shorthand fields that share a name with a real
	// field (an upstream's algorithm and hash_on), which apply to what
	// the client sent, never to a stored entity.
	Input func(in map[string]any)
	// CacheKey is Kong's cache_key: the fields whose values together are
	// unique (a plugin's name and scope, an acl's consumer and group).
	// When it names more than one field the store keeps them in a unique
	// column (see CacheKeyOf); one field is just a unique field.
	CacheKey []string
	// OnWrite is Kong's transformations on_write: it rewrites a validated
	// document before it is stored (a basic-auth password is hashed),
	// given the input as the client sent it, so a field is transformed
	// only when the write sets it. Validation alone does not run it.
	OnWrite func(input, doc map[string]any)
	// Checks run in order when every field is valid and add "@entity" or
	// field messages; GET /schemas renders them as "entity_checks".
	Checks []Check
	// SubschemaKey names the field that picks a subschema (a plugin's
	// name); Subschema returns the one for a value, nil if none, and
	// SubschemaError is the message for a value without one (with %s).
	SubschemaKey   string
	Subschema      func(name string) *Schema
	SubschemaError string
	// TTL is Kong's ttl = true (a key-auth credential): a write may give
	// "ttl", seconds until the entity expires, which Validate keeps in
	// the document it returns for the store to turn into an expiry;
	// expired entities are invisible to every read (see store.Table.TTL).
	TTL bool
	// KongCacheKey is Kong's cache_key where CacheKey (what the store
	// indexes) leaves it out: a target's {upstream, target}, a key's
	// {kid, set}. The declarative format derives ids from it.
	KongCacheKey []string
}

// KongCacheKeyFields is Kong's cache_key of the schema: KongCacheKey if
// set, else CacheKey.
func (s *Schema) KongCacheKeyFields() []string {
	if s.KongCacheKey != nil {
		return s.KongCacheKey
	}
	return s.CacheKey
}

// RewriteInput applies the schema's Input rewrite to a request body.
func (s *Schema) RewriteInput(in map[string]any) {
	if s.Input != nil {
		s.Input(in)
	}
}

// specialise returns the fields and checks that validate doc: the
// schema's own, with those of the subschema doc's key picks in place of
// the fields it specialises (Kong's new_subschema). A key without a
// subschema is an error on the key field.
func (s *Schema) specialise(doc map[string]any, fe FieldErrors) ([]Field, []Check) {
	if s.Subschema == nil {
		return s.Fields, s.Checks
	}
	name, ok := doc[s.SubschemaKey].(string)
	if !ok {
		return s.Fields, s.Checks // the key's own validation reports it
	}
	sub := s.Subschema(name)
	if sub == nil {
		fe[s.SubschemaKey] = fmt.Sprintf(s.SubschemaError, name)
		return s.Fields, s.Checks
	}
	key := [2]*Schema{s, sub}
	if sp, ok := specialised.Load(key); ok {
		sp := sp.(specialisation)
		return sp.fields, sp.checks
	}
	fields := make([]Field, len(s.Fields))
	for i, f := range s.Fields {
		fields[i] = f
		if sf := sub.Field(f.Name); sf != nil {
			fields[i] = *sf
			fields[i].Name = f.Name
		}
	}
	sp := specialisation{fields, append(append([]Check(nil), s.Checks...), sub.Checks...)}
	specialised.Store(key, sp)
	return sp.fields, sp.checks
}

// specialised holds each schema's specialisation by each subschema it
// met ([2]*Schema{schema, subschema} -> specialisation), built once: an
// import of ten thousand key-auth plugins built the same one ten thousand
// times. Schemas never change once registered, and the slices are only
// read.
var specialised sync.Map

type specialisation struct {
	fields []Field
	checks []Check
}

// Field returns the named top-level field or nil.
func (s *Schema) Field(name string) *Field {
	for i := range s.Fields {
		if s.Fields[i].Name == name {
			return &s.Fields[i]
		}
	}
	return nil
}

// CheckEndpointKey validates a path key that is not a UUID against the
// endpoint key's field before it is looked up, as Kong's
// validate_unique_row_method (kong/db/dao/init.lua) does for select_by_,
// update_by_, upsert_by_ and delete_by_<key>: a value that could never be
// stored names nothing, and says why (code 10) instead of reaching the
// database. Nil when the value is acceptable or s has no endpoint key.
func (s *Schema) CheckEndpointKey(value string) *Error {
	f := s.Field(s.EndpointKey)
	if f == nil {
		return nil
	}
	if _, msg := f.validate(value); msg != nil {
		return InvalidUnique(s.EndpointKey, fmt.Sprint(msg))
	}
	return nil
}

// ForeignFields lists the fields of type foreign.
func (s *Schema) ForeignFields() []Field {
	var out []Field
	for _, f := range s.Fields {
		if f.Type == TypeForeign {
			out = append(out, f)
		}
	}
	return out
}

// Validate expands shorthands, rejects unknown fields, fills defaults,
// checks every field and the entity checks, and returns the full entity
// with every field present (nil when unset). The input is not modified.
func (s *Schema) Validate(input map[string]any) (map[string]any, *Error) {
	doc := make(map[string]any, len(input))
	for k, v := range input {
		doc[k] = v
	}
	ttl, hasTTL, terr := s.takeTTL(doc)
	if terr != nil {
		return nil, terr
	}
	fe := FieldErrors{}
	s.expandShorthands(doc, fe)
	if s.Prepare != nil && len(fe) == 0 {
		s.Prepare(doc)
	}
	fields, checks := s.specialise(doc, fe)
	if len(fe) > 0 {
		return nil, SchemaViolation(fe)
	}
	out := validateRecord(fields, doc, fe)
	if len(fe) == 0 {
		runChecks(checks, out, fe)
	}
	if err := SchemaViolation(fe); err != nil {
		return nil, err
	}
	if hasTTL {
		out["ttl"] = ttl
	}
	return out, nil
}

func (s *Schema) expandShorthands(doc map[string]any, fe FieldErrors) {
	for _, sh := range s.Shorthands {
		v, ok := doc[sh.Name]
		if !ok {
			continue
		}
		delete(doc, sh.Name)
		if v == nil {
			continue
		}
		if msg := typeError(sh.Type, v); msg != "" {
			fe[sh.Name] = msg
			continue
		}
		if msg := sh.Expand(v, doc); msg != "" {
			fe[sh.Name] = msg
		}
	}
}

// validateRecord checks doc against fields and returns the normalised record.
func validateRecord(fields []Field, doc map[string]any, fe FieldErrors) map[string]any {
	out := make(map[string]any, len(fields))
	known := make(map[string]bool, len(fields))
	for i := range fields {
		f := &fields[i]
		known[f.Name] = true
		v, present := doc[f.Name]
		if !present {
			v = cloneJSON(f.Default)
		}
		if !present && v == nil && f.Type == TypeRecord && f.Required {
			// Kong fills a required record left out from its fields'
			// defaults (should_recurse_record in kong/db/schema/init.lua).
			v = map[string]any{}
		}
		if v == nil {
			if f.Required {
				fe[f.Name] = "required field missing"
			}
			out[f.Name] = nil
			continue
		}
		nv, err := f.validate(v)
		if err != nil {
			fe[f.Name] = err
			continue
		}
		out[f.Name] = nv
	}
	for k := range doc {
		if !known[k] {
			fe[k] = "unknown field"
		}
	}
	return out
}

// validate normalises one non-nil value; the error is a string, FieldErrors or []any.
func (f *Field) validate(v any) (any, any) {
	if msg := typeError(f.Type, v); msg != "" {
		return nil, msg
	}
	if f.Abstract {
		return v, nil
	}
	if f.MustBeNull {
		return nil, "value must be null"
	}
	switch f.Type {
	case TypeInteger:
		v, _ = toInteger(v)
	case TypeNumber:
		v, _ = toNumber(v)
	case TypeArray, TypeSet:
		return f.validateElements(v.([]any))
	case TypeMap:
		return f.validateMap(v.(map[string]any))
	case TypeRecord:
		sub := FieldErrors{}
		in := v.(map[string]any)
		if len(f.Shorthands) > 0 {
			in = expandRecordShorthands(f.Shorthands, in, sub)
			if len(sub) > 0 {
				return nil, sub
			}
		}
		rec := validateRecord(f.Fields, in, sub)
		if len(sub) > 0 {
			return nil, sub
		}
		if f.Check != nil {
			if msg := f.Check(rec); msg != "" {
				return nil, msg
			}
		}
		if f.RecordCheck != nil {
			if msg := f.RecordCheck(rec); msg != "" {
				return nil, msg
			}
		}
		return rec, nil
	case TypeForeign:
		return lowerForeignID(validateForeign(v.(map[string]any)))
	}
	if msg := f.checkScalar(v); msg != "" {
		return nil, msg
	}
	if s, ok := v.(string); ok && f.UUID {
		return strings.ToLower(s), nil
	}
	return v, nil
}

// lowerForeignID stores a valid reference's id in lower case. Kong takes
// UUIDs in any letter case (kong/tools/uuid.lua matches case-blind) and
// PostgreSQL's uuid type gives them back in lower case, so an id is the
// same entity however it was written, and is stored one way.
func lowerForeignID(ref any, errs any) (any, any) {
	if m, ok := ref.(map[string]any); ok && errs == nil {
		if id, ok := m["id"].(string); ok {
			m["id"] = strings.ToLower(id)
		}
	}
	return ref, errs
}

func (f *Field) checkScalar(v any) string {
	if s, ok := v.(string); ok {
		if f.LenMin > 0 && len([]rune(s)) < f.LenMin {
			return fmt.Sprintf("length must be at least %d", f.LenMin)
		}
		if f.UUID && !IsUUID(s) {
			return "expected a valid UUID"
		}
	}
	if n, ok := toNumber(v); ok && len(f.Between) == 2 && (n < float64(f.Between[0]) || n > float64(f.Between[1])) {
		return fmt.Sprintf("value should be between %d and %d", f.Between[0], f.Between[1])
	}
	if n, ok := toNumber(v); ok && f.Gt != nil && n <= *f.Gt {
		return "value must be greater than " + strconv.FormatFloat(*f.Gt, 'f', -1, 64)
	}
	if len(f.OneOf) > 0 && !containsValue(f.OneOf, v) {
		return "expected one of: " + joinValues(f.OneOf)
	}
	if s, ok := v.(string); ok && f.StartsWith != "" && !strings.HasPrefix(s, f.StartsWith) {
		return "should start with: " + f.StartsWith
	}
	if f.Check != nil {
		if msg := f.Check(v); msg != "" {
			return msg
		}
	}
	if s, ok := v.(string); ok {
		if msg := checkStorable(s); msg != "" {
			return msg
		}
		return checkMaxBytes(s, f.MaxBytes)
	}
	return ""
}

func (f *Field) validateElements(list []any) (any, any) {
	if f.LenMin > 0 && len(list) < f.LenMin {
		return nil, fmt.Sprintf("length must be at least %d", f.LenMin)
	}
	out := make([]any, 0, len(list))
	errs := make([]any, len(list))
	failed := false
	for i, el := range list {
		if el == nil {
			errs[i], failed = "required field missing", true
			continue
		}
		nv, err := f.Elements.validate(el)
		if err != nil {
			errs[i], failed = err, true
			continue
		}
		if f.Type == TypeSet && containsValue(out, nv) {
			continue // sets keep one copy of each element
		}
		out = append(out, nv)
	}
	if failed {
		return nil, errs
	}
	return out, nil
}

func (f *Field) validateMap(m map[string]any) (any, any) {
	if f.LenMin > 0 && len(m) < f.LenMin {
		return nil, fmt.Sprintf("length must be at least %d", f.LenMin)
	}
	out := make(map[string]any, len(m))
	sub := FieldErrors{}
	for k, v := range m {
		if f.Keys != nil {
			if _, err := f.Keys.validate(k); err != nil {
				sub[k] = err
				continue
			}
		} else if msg := checkStorable(k); msg != "" {
			sub[k] = msg
			continue
		}
		if v == nil {
			sub[k] = "required field missing"
			continue
		}
		nv, err := f.Values.validate(v)
		if err != nil {
			sub[k] = err
			continue
		}
		out[k] = nv
	}
	if len(sub) > 0 {
		return nil, sub
	}
	return out, nil
}

// validateForeign checks the reference's id and keeps only it: like Kong's
// validate_primary_key(value, true), other keys beside a valid id are
// ignored, so a client may send the whole parent entity (go-kong sends the
// Service it got back). Without a valid id the other keys are reported
// too. The admin package resolves {"name": …} to an id before validation.
func validateForeign(m map[string]any) (any, any) {
	sub := FieldErrors{}
	id, ok := m["id"]
	switch {
	case !ok || id == nil:
		sub["id"] = "required field missing"
	case typeError(TypeString, id) != "":
		sub["id"] = "expected a string"
	case !IsUUID(id.(string)):
		sub["id"] = "expected a valid UUID"
	default:
		return map[string]any{"id": id}, nil
	}
	for k := range m {
		if k != "id" {
			sub[k] = "unknown field"
		}
	}
	return nil, sub
}

var typeNames = map[Type]string{
	TypeString: "a string", TypeInteger: "an integer", TypeNumber: "a number",
	TypeBoolean: "a boolean", TypeArray: "an array", TypeSet: "a set",
	TypeMap: "a map", TypeRecord: "a record", TypeForeign: "a record",
}

// typeError returns "expected a string" etc. when v is not of type t.
func typeError(t Type, v any) string {
	ok := false
	switch t {
	case TypeString:
		_, ok = v.(string)
	case TypeInteger:
		_, ok = toInteger(v)
	case TypeNumber:
		_, ok = toNumber(v)
	case TypeBoolean:
		_, ok = v.(bool)
	case TypeArray, TypeSet:
		_, ok = v.([]any)
	case TypeMap, TypeRecord, TypeForeign:
		_, ok = v.(map[string]any)
	}
	if ok {
		return ""
	}
	return "expected " + typeNames[t]
}

func toNumber(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	}
	return 0, false
}

func toInteger(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case json.Number:
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			return i, true
		}
	}
	f, ok := toNumber(v)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

func containsValue(list []any, v any) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func joinValues(list []any) string {
	parts := make([]string, len(list))
	for i, v := range list {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ", ")
}

// cloneJSON deep-copies a default so callers can never mutate the schema.
func cloneJSON(v any) any {
	switch t := v.(type) {
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = cloneJSON(x)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = cloneJSON(x)
		}
		return out
	}
	return v
}

// IsUUID reports whether s is a canonical 8-4-4-4-12 hex UUID.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c rune) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// Merge deep-merges patch into base the way Kong's PATCH does: records
// merge key by key, everything else (arrays, sets, maps) is replaced.
func (s *Schema) Merge(base, patch map[string]any) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range patch {
		f := s.Field(k)
		bm, bok := out[k].(map[string]any)
		pm, pok := v.(map[string]any)
		if f != nil && f.Type == TypeRecord && bok && pok {
			out[k] = mergeRecord(bm, pm)
			continue
		}
		out[k] = v
	}
	return out
}

func mergeRecord(base, patch map[string]any) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range patch {
		bm, bok := out[k].(map[string]any)
		pm, pok := v.(map[string]any)
		if bok && pok {
			out[k] = mergeRecord(bm, pm)
			continue
		}
		out[k] = v
	}
	return out
}

// expandRecordShorthands moves a record's deprecated shorthand fields to
// the fields that replaced them, as Kong's process_auto_fields does
// (kong/db/schema/init.lua): the value must have the shorthand's type, it
// may not disagree with a value set at the new path ("both deprecated and
// new field are used but their values mismatch"), and the new field's
// value wins when both are set. in is not modified.
func expandRecordShorthands(shorthands []RecordShorthand, in map[string]any, fe FieldErrors) map[string]any {
	out := cloneJSON(in).(map[string]any)
	for _, sh := range shorthands {
		v, ok := out[sh.Name]
		if !ok {
			continue
		}
		delete(out, sh.Name)
		if v == nil {
			continue
		}
		if msg := typeError(sh.Type, v); msg != "" {
			fe[sh.Name] = msg
			continue
		}
		parent := out
		for _, k := range sh.Path[:len(sh.Path)-1] {
			next, _ := parent[k].(map[string]any)
			if next == nil {
				next = map[string]any{}
				parent[k] = next
			}
			parent = next
		}
		last := sh.Path[len(sh.Path)-1]
		if cur := parent[last]; cur != nil {
			if !reflect.DeepEqual(cur, v) {
				fe[sh.Name] = fmt.Sprintf("both deprecated and new field are used but their values mismatch: %s = %v vs %s = %v",
					sh.Name, v, strings.Join(sh.Path, "."), cur)
			}
			continue
		}
		parent[last] = v
	}
	return out
}
