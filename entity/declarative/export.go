package declarative

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/grapevine-gw/grapevine/entity"
)

// Export writes the stored documents of every kind (table name -> documents,
// each kind's in a stable order) as one declarative configuration in YAML:
// each entity nested under the first parent its foreign fields name (a
// plugin under its route, else its service, else its consumer), its other
// references as ids, with `_transform: false` so that importing it again
// does not hash stored secrets a second time. Every field is written,
// nulls included, so that importing the file gives back the same
// documents.
func Export(docs map[string][]json.RawMessage) ([]byte, error) {
	byID := map[string]map[string]map[string]any{}
	top := map[string]any{"_format_version": FormatVersion, "_transform": false}
	for _, k := range entity.Kinds() {
		byID[k.Name()] = map[string]map[string]any{}
		for _, raw := range docs[k.Name()] {
			doc, err := decodeStored(raw)
			if err != nil {
				return nil, fmt.Errorf("export %s: %w", k.Name(), err)
			}
			id, _ := doc["id"].(string)
			byID[k.Name()][id] = doc
			parent := nestUnder(k, doc, byID)
			key := k.Name()
			if parent == nil {
				parent = top
			}
			list, _ := parent[key].([]any)
			parent[key] = append(list, doc)
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(top); err != nil {
		return nil, fmt.Errorf("export: encode YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("export: encode YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// nestUnder picks the parent doc is written under: the first foreign
// field, in field order, that names its parent (see nestable) and an
// entity exported already. That field is left out (the nesting
// says it); the other references become plain ids, as Kong's export
// writes them.
func nestUnder(k *entity.Kind, doc map[string]any, byID map[string]map[string]map[string]any) map[string]any {
	var parent map[string]any
	for _, ref := range k.References() {
		id := refID(doc[ref.Field])
		if id == "" {
			continue
		}
		pk, _ := entity.KindByName(ref.Kind)
		p := byID[ref.Kind][id]
		if parent == nil && p != nil && ref.Kind != k.Name() && nestable(pk, k, ref.Field) {
			parent = p
			delete(doc, ref.Field)
			continue
		}
		doc[ref.Field] = id
	}
	return parent
}

// nestable says whether child's entities are written under parent's
// through child's foreign field: when the field names its parent (a
// route's "service", a target's "upstream"; not a service's
// "client_certificate", a reference rather than an owner; see namesParent) and parent has
// no stored field of child's name.
func nestable(parent, child *entity.Kind, field string) bool {
	if parent == nil || !namesParent(field, parent.Name()) {
		return false
	}
	f := parent.Schema.Field(child.Name())
	return f == nil || f.Transient
}

// namesParent: the field is the parent's name in the singular, or its
// last word ("set" of key_sets).
func namesParent(field, parent string) bool {
	return parent == field+"s" || strings.HasSuffix(parent, "_"+field+"s")
}

// decodeStored decodes a stored document with its numbers as Go numbers
// the YAML encoder writes as numbers.
func decodeStored(raw json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	return numbers(doc).(map[string]any), nil
}

func numbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = numbers(x)
		}
	case []any:
		for i, x := range t {
			t[i] = numbers(x)
		}
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	}
	return v
}
