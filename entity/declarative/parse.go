package declarative

import (
	"sort"
	"strconv"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
)

// Config is a valid declarative configuration: every entity, validated and
// with its foreign keys as {"id": …}, by kind in import order (parents
// first).
type Config struct {
	Kinds []KindDocs
}

// KindDocs is every entity of one kind, in the order the file gives them.
type KindDocs struct {
	Kind *entity.Kind
	Docs []map[string]any
}

// Count is how many entities the configuration holds.
func (c *Config) Count() int {
	n := 0
	for _, k := range c.Kinds {
		n += len(k.Docs)
	}
	return n
}

// item is one entity read from the file, before validation.
type item struct {
	kind  *entity.Kind
	in    map[string]any
	given map[string]any // as written, for error reports
	path  string
	line  int
	// kongID says whether Kong knows the id when it derives nested
	// children's ids: given by the file or derived by Kong's rule.
	kongID bool
}

// parser holds the entities read so far and the errors found.
type parser struct {
	items map[string][]*item // by kind name
	errs  []EntityError
	now   time.Time
	// referrers caches entity.Referrers by kind name: it walks the whole
	// registry, and a file has thousands of entities per kind.
	referrers map[string][]entity.Referrer
	ids       *idDeriver
}

// referrersOf is entity.Referrers(name), computed once per parse.
func (p *parser) referrersOf(name string) []entity.Referrer {
	refs, ok := p.referrers[name]
	if !ok {
		refs = entity.Referrers(name)
		p.referrers[name] = refs
	}
	return refs
}

// Parse reads a declarative configuration (YAML or JSON) and validates it
// whole: the header, every entity against its kind's schema (as the Admin
// API does), references between entities and uniqueness within the file.
// A refused document gives *Error naming each wrong entity and field.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxSize {
		return nil, docError("the document is %d bytes, more than the %d bytes (%d MiB) a declarative configuration may be", len(data), MaxSize, MaxSize>>20)
	}
	v, err := decodeYAML(data)
	if err != nil {
		return nil, &Error{Message: err.Error()}
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, docError("expected a record (a YAML mapping or JSON object) at the top level")
	}
	delete(top, lineKey)
	transform, err := header(top)
	if err != nil {
		return nil, err
	}
	p := &parser{items: map[string][]*item{}, now: time.Now(), referrers: map[string][]entity.Referrer{}, ids: newIDDeriver()}
	for _, k := range entity.Kinds() {
		if list, ok := top[k.Name()]; ok {
			p.list(k, list, k.Name(), nil, "")
		}
	}
	p.resolve()
	cfg := p.validate(transform)
	if len(p.errs) > 0 {
		return nil, &Error{Entities: p.errs}
	}
	return cfg, nil
}

// header checks the top-level keys that are not entities, and that every
// other key names a registered kind; it returns _transform.
func header(top map[string]any) (bool, error) {
	switch v := top["_format_version"].(type) {
	case nil:
		return false, docError("_format_version: required field missing")
	case string:
		if v != FormatVersion {
			return false, docError("_format_version: %q is not supported, only %q", v, FormatVersion)
		}
	default:
		return false, docError("_format_version: expected a string")
	}
	transform := true
	if v, ok := top["_transform"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return false, docError("_transform: expected a boolean")
		}
		transform = b
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		switch key {
		case "_format_version", "_transform", "_comment", "_ignore", "_workspace":
			continue
		}
		if _, ok := entity.KindByName(key); !ok {
			return false, docError("%s: unknown field (not an entity kind)", key)
		}
	}
	return transform, nil
}

// list reads the entities of kind k at path; under a parent, each is
// given the parent through its foreign field parentField.
func (p *parser) list(k *entity.Kind, v any, path string, parent *item, parentField string) {
	list, ok := v.([]any)
	if !ok {
		p.fail(&item{kind: k, path: path, line: parentLine(parent)}, "", "expected an array")
		return
	}
	for i, e := range list {
		it := &item{kind: k, path: path + "[" + strconv.Itoa(i+1) + "]", line: parentLine(parent)}
		m, ok := e.(map[string]any)
		if s, isString := e.(string); isString && k.EndpointKey() != "" {
			// An SNI given by name alone, as the Admin API takes a
			// certificate's snis.
			m, ok = map[string]any{k.EndpointKey(): s}, true
		}
		if !ok {
			p.fail(it, "", "expected a record")
			continue
		}
		if l := lineOf(m); l > 0 {
			it.line = l
		}
		p.read(it, m, parent, parentField)
	}
}

// read takes one entity's record: its nested children are read in turn,
// with this entity as their parent.
func (p *parser) read(it *item, m map[string]any, parent *item, parentField string) {
	k := it.kind
	children := map[string]any{}
	for _, ref := range p.referrersOf(k.Name()) {
		key := ref.Kind.Name()
		if ref.Kind == k {
			continue
		}
		if f := k.Schema.Field(key); f != nil && !f.Transient {
			continue // a real field of that name: Kong nests nothing there
		}
		if list, ok := m[key]; ok {
			children[key] = list
			delete(m, key)
		}
	}
	stripLines(m)
	it.given = cloneMap(m)
	p.giveID(it, m, parent, parentField)
	if parent != nil {
		m[parentField] = map[string]any{"id": parent.in["id"]}
	}
	p.stamp(k, m)
	it.in = m
	p.items[k.Name()] = append(p.items[k.Name()], it)
	for _, ref := range p.referrersOf(k.Name()) {
		if list, ok := children[ref.Kind.Name()]; ok {
			p.list(ref.Kind, list, it.path+"."+ref.Kind.Name(), it, ref.Field)
		}
	}
}

// giveID derives the id of an entity the file gives without one, from
// the record as given (ids.go).
func (p *parser) giveID(it *item, m map[string]any, parent *item, parentField string) {
	if m["id"] != nil {
		it.kongID = true
		return
	}
	var parentID string
	parentKong := false
	if parent != nil {
		parentID, _ = parent.in["id"].(string)
		parentKong = parent.kongID
	} else {
		parentField = ""
	}
	m["id"], it.kongID = p.ids.derive(it.kind, it.given, parentField, parentID, parentKong)
}

// stamp sets the timestamps the file leaves out, as the Admin API does on
// a create.
func (p *parser) stamp(k *entity.Kind, m map[string]any) {
	for _, name := range []string{"created_at", "updated_at"} {
		f := k.Schema.Field(name)
		if f == nil || m[name] != nil {
			continue
		}
		if f.Type == entity.TypeNumber {
			m[name] = float64(p.now.UnixMilli()) / 1000
		} else {
			m[name] = p.now.Unix()
		}
	}
}

func parentLine(parent *item) int {
	if parent == nil {
		return 0
	}
	return parent.line
}

// fail records an error about one field of it ("" for the entity).
func (p *parser) fail(it *item, field, msg string) {
	typ := "field"
	if field == "" {
		typ = "entity"
	}
	p.failAll(it, []FieldError{{Field: field, Message: msg, Type: typ}})
}

func (p *parser) failAll(it *item, errs []FieldError) {
	e := EntityError{Kind: it.kind.Name(), Path: it.path, Line: it.line, Entity: it.given, Errors: errs}
	if it.in != nil {
		e.ID, _ = it.in["id"].(string)
		if key := it.kind.EndpointKey(); key != "" {
			e.Name, _ = it.in[key].(string)
		}
	}
	p.errs = append(p.errs, e)
}

// stripLines takes the line numbers out of every record inside m.
func stripLines(v any) {
	switch t := v.(type) {
	case map[string]any:
		delete(t, lineKey)
		for _, x := range t {
			stripLines(x)
		}
	case []any:
		for _, x := range t {
			stripLines(x)
		}
	}
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
