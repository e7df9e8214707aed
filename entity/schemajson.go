package entity

// JSON renders the schema as GET /schemas/{name} does in Kong:
// {"fields":[{"<name>":{"type":…,"default":…,…}}],"entity_checks":[…]}.
// decK reads defaults from it, so they must match what Validate fills in.
func (s *Schema) JSON() map[string]any {
	fields := make([]any, len(s.Fields))
	for i := range s.Fields {
		fields[i] = map[string]any{s.Fields[i].Name: s.Fields[i].attrs()}
	}
	return map[string]any{"fields": fields, "entity_checks": renderChecks(s.Checks)}
}

func (f *Field) attrs() map[string]any {
	a := map[string]any{"type": string(f.Type)}
	if f.Default != nil {
		a["default"] = f.Default
	}
	setTrue(a, "required", f.Required)
	setTrue(a, "unique", f.Unique)
	setTrue(a, "auto", f.Auto)
	setTrue(a, "uuid", f.UUID)
	setTrue(a, "timestamp", f.Timestamp)
	setTrue(a, "transient", f.Transient)
	setTrue(a, "abstract", f.Abstract)
	if len(f.OneOf) > 0 {
		a["one_of"] = f.OneOf
	}
	if len(f.Between) == 2 {
		a["between"] = []any{f.Between[0], f.Between[1]}
	}
	if f.LenMin > 0 {
		a["len_min"] = f.LenMin
	}
	if f.StartsWith != "" {
		a["starts_with"] = f.StartsWith
	}
	if f.Gt != nil {
		a["gt"] = *f.Gt
	}
	if f.MustBeNull {
		a["eq"] = nil
	}
	if f.Reference != "" {
		a["reference"] = f.Reference
	}
	if f.OnDelete != "" {
		a["on_delete"] = string(f.OnDelete)
	}
	f.nestedAttrs(a)
	for k, v := range f.Extra {
		a[k] = v
	}
	return a
}

func (f *Field) nestedAttrs(a map[string]any) {
	if f.Elements != nil {
		a["elements"] = f.Elements.attrs()
	}
	if f.Keys != nil {
		a["keys"] = f.Keys.attrs()
	}
	if f.Values != nil {
		a["values"] = f.Values.attrs()
	}
	if f.Type == TypeRecord {
		sub := make([]any, len(f.Fields))
		for i := range f.Fields {
			sub[i] = map[string]any{f.Fields[i].Name: f.Fields[i].attrs()}
		}
		a["fields"] = sub
		if len(f.Shorthands) > 0 {
			a["shorthand_fields"] = renderShorthands(f.Shorthands)
		}
	}
}

// renderShorthands is a record's "shorthand_fields" as Kong's
// GET /schemas renders them: the type and the deprecation.
func renderShorthands(shs []RecordShorthand) []any {
	out := make([]any, len(shs))
	for i, sh := range shs {
		path := make([]any, len(sh.Path))
		for j, p := range sh.Path {
			path[j] = p
		}
		attrs := map[string]any{"type": string(sh.Type), "deprecation": map[string]any{
			"replaced_with":      []any{map[string]any{"path": path}},
			"message":            sh.Message,
			"removal_in_version": "4.0",
		}}
		if sh.LenMin != nil {
			attrs["len_min"] = *sh.LenMin
		}
		out[i] = map[string]any{sh.Name: attrs}
	}
	return out
}

func setTrue(a map[string]any, key string, v bool) {
	if v {
		a[key] = true
	}
}

// FieldJSON renders one top-level field as GET /schemas does, nil if the
// schema has no such field.
func (s *Schema) FieldJSON(name string) map[string]any {
	f := s.Field(name)
	if f == nil {
		return nil
	}
	return f.attrs()
}
