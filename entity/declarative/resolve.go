package declarative

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/parallel"
)

// index finds the file's entities of one kind by id and by each unique
// field.
type index struct {
	byID    map[string]*item
	byField map[string]map[string]*item // field -> value -> entity
}

// resolve checks that ids and unique fields are not declared twice
// (Kong's "uniqueness violation: … already declared") and turns every
// reference by id or unique field into {"id": …}, refusing those that name
// no entity of the file.
func (p *parser) resolve() {
	// Kinds come parents first, so a kind's references are resolved
	// against indexes built already, and its own index sees them
	// resolved (a target's key is unique per upstream id).
	indexes := map[string]*index{}
	for _, k := range entity.Kinds() {
		refs := k.References()
		for _, it := range p.items[k.Name()] {
			for _, ref := range refs {
				p.resolveRef(it, ref, indexes[ref.Kind])
			}
		}
		indexes[k.Name()] = p.indexKind(k)
	}
}

func (p *parser) indexKind(k *entity.Kind) *index {
	idx := &index{byID: map[string]*item{}, byField: map[string]map[string]*item{}}
	unique := k.Unique()
	scope := k.Schema.KeyScope
	key := k.EndpointKey()
	for _, it := range p.items[k.Name()] {
		// A name declared twice gives its twin the same derived id: as
		// Kong's populate_references, the endpoint key is claimed first
		// and the id found twice only reported when the key was not.
		keyHeld := false
		if s, ok := it.in[key].(string); ok && scope == "" && slices.Contains(unique, key) {
			keyHeld = !p.claim(idx, it, key, s, s, key)
		}
		if id, ok := it.in["id"].(string); ok {
			if idx.byID[id] != nil {
				if !keyHeld {
					p.fail(it, "id", fmt.Sprintf("uniqueness violation: '%s' entity with primary key set to '%s' already declared", k.Name(), id))
				}
				continue
			}
			idx.byID[id] = it
		}
		for _, field := range unique {
			if field == key && scope == "" {
				continue // claimed above
			}
			s, _ := it.in[field].(string)
			p.claim(idx, it, field, s, s, field)
		}
		if s, ok := it.in[key].(string); ok && scope != "" {
			// Unique within the parent only (a target per upstream).
			p.claim(idx, it, key, refID(it.in[scope])+"\x00"+s, s, key+"@"+scope)
		}
	}
	return idx
}

// claim records that it holds value in field (shown as shown), or fails
// it if another entity of the file holds it already (false).
func (p *parser) claim(idx *index, it *item, field, value, shown, slot string) bool {
	if value == "" || shown == "" {
		return true
	}
	m := idx.byField[slot]
	if m == nil {
		m = map[string]*item{}
		idx.byField[slot] = m
	}
	if m[value] != nil {
		p.fail(it, field, fmt.Sprintf("uniqueness violation: '%s' entity with %s set to '%s' already declared", it.kind.Name(), field, shown))
		return false
	}
	m[value] = it
	return true
}

// resolveRef turns it's reference ref, given as an id, an endpoint key or
// a record with either, into {"id": …}.
func (p *parser) resolveRef(it *item, ref entity.Reference, idx *index) {
	v, ok := it.in[ref.Field]
	if !ok || v == nil || idx == nil {
		return
	}
	target, ok := idx.find(v)
	if !ok {
		return // neither a string nor a record: the schema reports the type
	}
	if target == nil {
		p.fail(it, ref.Field, fmt.Sprintf("invalid reference '%s: %s' (no such entry in '%s')", ref.Field, describe(v), ref.Kind))
		return
	}
	it.in[ref.Field] = map[string]any{"id": target.in["id"]}
}

// find looks v up: a string by id then by each unique field, a record by
// the first of its fields that is the id or a unique field. ok is false
// when v is neither.
func (idx *index) find(v any) (*item, bool) {
	switch t := v.(type) {
	case string:
		if it := idx.byID[t]; it != nil {
			return it, true
		}
		for _, field := range idx.fields() {
			if it := idx.byField[field][t]; it != nil {
				return it, true
			}
		}
		return nil, true
	case map[string]any:
		if id, ok := t["id"].(string); ok {
			return idx.byID[id], true
		}
		for _, field := range idx.fields() {
			if s, ok := t[field].(string); ok {
				return idx.byField[field][s], true
			}
		}
		return nil, len(t) > 0
	}
	return nil, false
}

// fields lists the unique fields indexed, in a fixed order.
func (idx *index) fields() []string {
	out := make([]string, 0, len(idx.byField))
	for f := range idx.byField {
		if !strings.Contains(f, "@") {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

// refID is the id of a resolved reference, "" if there is none.
func refID(v any) string {
	if m, ok := v.(map[string]any); ok {
		id, _ := m["id"].(string)
		return id
	}
	return ""
}

func describe(v any) string {
	if m, ok := v.(map[string]any); ok {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

// validate checks every entity against its kind's schema, as the Admin
// API does on a create: the schema's input rewrites, defaults, checks and,
// unless the file says _transform: false (an export's, whose secrets are
// hashed already), its on-write transformations.
//
// Entities validate on their own, so each kind's are validated on every
// core (validation was half of parsing a big file); the documents and
// errors are then taken in file order.
func (p *parser) validate(transform bool) *Config {
	cfg := &Config{}
	for _, k := range entity.Kinds() {
		items := p.items[k.Name()]
		docs := make([]map[string]any, len(items))
		errs := make([][]FieldError, len(items))
		_ = parallel.For(len(items), func(i int) error {
			docs[i], errs[i] = validateOne(k, items[i].in, transform)
			return nil // errs keeps every entity's, to report them all
		})
		kd := KindDocs{Kind: k, Docs: make([]map[string]any, 0, len(items))}
		for i, it := range items {
			if errs[i] != nil {
				p.failAll(it, errs[i])
				continue
			}
			kd.Docs = append(kd.Docs, docs[i])
		}
		cfg.Kinds = append(cfg.Kinds, kd)
	}
	return cfg
}

// validateOne validates one entity of kind k as the Admin API does on a
// create.
func validateOne(k *entity.Kind, in map[string]any, transform bool) (map[string]any, []FieldError) {
	k.Schema.RewriteInput(in)
	expiry, ok := takeExpiry(k, in)
	if !ok {
		return nil, []FieldError{{Field: "ttl", Message: expiryMessage, Type: "field"}}
	}
	doc, verr := k.Schema.Validate(in)
	if verr != nil {
		return nil, fieldErrors(verr)
	}
	if expiry != nil {
		doc["ttl"] = *expiry
	}
	if transform && k.Schema.OnWrite != nil {
		k.Schema.OnWrite(in, doc)
	}
	for _, f := range k.Schema.Fields {
		if f.Transient {
			delete(doc, f.Name)
		}
	}
	return doc, nil
}

// fieldErrors flattens a schema violation into one message per field
// ("config.minute"), entity-level ones first.
func fieldErrors(e *entity.Error) []FieldError {
	if len(e.Fields) == 0 {
		return []FieldError{{Message: e.Message, Type: "entity"}}
	}
	var out []FieldError
	flatten("", e.Fields, &out)
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Field == "") != (out[j].Field == "") {
			return out[i].Field == ""
		}
		return out[i].Field < out[j].Field
	})
	return out
}

func flatten(prefix string, v any, out *[]FieldError) {
	switch t := v.(type) {
	case string:
		typ := "field"
		if prefix == "" {
			typ = "entity"
		}
		*out = append(*out, FieldError{Field: prefix, Message: t, Type: typ})
	case entity.FieldErrors:
		flattenMap(prefix, t, out)
	case map[string]any:
		flattenMap(prefix, t, out)
	case []any:
		for i, sub := range t {
			if sub != nil {
				flatten(join(prefix, fmt.Sprint(i+1)), sub, out)
			}
		}
	}
}

func flattenMap(prefix string, m map[string]any, out *[]FieldError) {
	for k, sub := range m {
		if k == "@entity" {
			if list, ok := sub.([]any); ok {
				for _, msg := range list {
					flatten(prefix, fmt.Sprint(msg), out)
				}
			}
			continue
		}
		flatten(join(prefix, k), sub, out)
	}
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}
