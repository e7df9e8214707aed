package entity

import "strings"

// Check is one entity check (Kong's entity_checks), written once as data:
// the same value validates a document and renders into GET /schemas.
type Check interface {
	// run adds its messages to fe; stop says the checks after it must not
	// run (their messages would only repeat this one's).
	run(doc map[string]any, fe FieldErrors) (stop bool)
	// render is the check as GET /schemas/{name} shows it; nil for a
	// check Kong does not render.
	render() any
}

// Match is a condition on one field's value, Kong's if_match and
// then_match: set exactly one member.
type Match struct {
	OneOf    []any // the value is one of these
	NotOneOf []any // the value is none of these
	// ElementsNotOneOf: no element of an array value is one of these.
	ElementsNotOneOf []any
	Null             bool // the value is not set (Kong's eq = null, len_eq = 0)
	// Is: the value is exactly this string, rendered as Kong's anchored
	// pattern match = "^value$" (an upstream's hash_on).
	Is string
	// Required: the value is set (Kong's then_match required = true).
	Required bool
	// Len0 renders Null as Kong's len_eq = 0 (an array field) rather
	// than eq = null.
	Len0 bool
	// Eq: the value equals it (Kong's eq with a value).
	Eq any
	// Gt: the value is a number greater than it.
	Gt *float64
	// Contains: the value is an array holding it.
	Contains any
}

func (m Match) matches(v any) bool {
	switch {
	case m.Is != "":
		return v == m.Is
	case m.Eq != nil:
		return v == m.Eq
	case m.Gt != nil:
		n, ok := toNumber(v)
		return ok && n > *m.Gt
	case m.Contains != nil:
		list, _ := v.([]any)
		return containsValue(list, m.Contains)
	case m.Required:
		return v != nil
	case m.OneOf != nil:
		return containsValue(m.OneOf, v)
	case m.NotOneOf != nil:
		return !containsValue(m.NotOneOf, v)
	case m.ElementsNotOneOf != nil:
		list, _ := v.([]any)
		for _, el := range list {
			if containsValue(m.ElementsNotOneOf, el) {
				return false
			}
		}
		return true
	}
	return isEmpty(v) // Null
}

// failure is the then-field's message when it does not match m, as
// Kong's field validators word it.
func (m Match) failure() string {
	switch {
	case m.Required:
		return "required field missing"
	case m.OneOf != nil:
		return "expected one of: " + joinValues(m.OneOf)
	case m.Contains != nil:
		return "expected to contain: " + toString(m.Contains)
	case m.Eq != nil:
		return "value must be " + toString(m.Eq)
	case m.Gt != nil:
		return "value must be greater than " + toString(*m.Gt)
	}
	return "value must be null"
}

func (m Match) render() map[string]any {
	switch {
	case m.Is != "":
		return map[string]any{"match": "^" + m.Is + "$"}
	case m.Eq != nil:
		return map[string]any{"eq": m.Eq}
	case m.Gt != nil:
		return map[string]any{"gt": *m.Gt}
	case m.Contains != nil:
		return map[string]any{"contains": m.Contains}
	case m.Required:
		return map[string]any{"required": true}
	case m.OneOf != nil:
		return map[string]any{"one_of": m.OneOf}
	case m.NotOneOf != nil:
		return map[string]any{"not_one_of": m.NotOneOf}
	case m.ElementsNotOneOf != nil:
		return map[string]any{"elements": map[string]any{"type": "string", "not_one_of": m.ElementsNotOneOf}}
	case m.Len0:
		return map[string]any{"len_eq": 0}
	}
	return map[string]any{"eq": nil}
}

// Conditional is Kong's conditional check: when If matches IfMatch, Then
// must match ThenMatch; ThenErr replaces the default field message.
type Conditional struct {
	If        string
	IfMatch   Match
	Then      string
	ThenMatch Match
	ThenErr   string
}

func (c Conditional) run(doc map[string]any, fe FieldErrors) bool {
	if !c.IfMatch.matches(getPath(doc, c.If)) || c.ThenMatch.matches(getPath(doc, c.Then)) {
		return false
	}
	msg := c.ThenErr
	if msg == "" {
		msg = c.ThenMatch.failure()
	}
	setPath(fe, c.Then, msg)
	fe.Entity("failed conditional validation given value of field '" + c.If + "'")
	return false
}

func (c Conditional) render() any {
	cond := map[string]any{
		"if_field": c.If, "if_match": c.IfMatch.render(),
		"then_field": c.Then, "then_match": c.ThenMatch.render(),
	}
	if c.ThenErr != "" {
		cond["then_err"] = c.ThenErr
	}
	return map[string]any{"conditional": cond}
}

// MutuallyExclusiveSubsets is Kong's check of that name: the elements of
// Field may come from one subset only. Its failure stops the checks after
// it, which would only add messages about the mix.
type MutuallyExclusiveSubsets struct {
	Field   string
	Subsets [][]string
}

func (c MutuallyExclusiveSubsets) run(doc map[string]any, fe FieldErrors) bool {
	set := map[any]bool{}
	list, _ := doc[c.Field].([]any)
	for _, v := range list {
		set[v] = true
	}
	var hit []string
	for _, subset := range c.Subsets {
		for _, p := range subset {
			if set[p] {
				hit = append(hit, "('"+strings.Join(subset, "', '")+"')")
				break
			}
		}
	}
	if len(hit) < 2 {
		return false
	}
	fe.Entity("these sets are mutually exclusive: " + strings.Join(hit, ", "))
	return true
}

func (c MutuallyExclusiveSubsets) render() any {
	subsets := make([]any, len(c.Subsets))
	for i, s := range c.Subsets {
		subsets[i] = stringsToAny(s)
	}
	return map[string]any{"mutually_exclusive_subsets": map[string]any{"field": c.Field, "subsets": subsets}}
}

// AtLeastOneOf is Kong's at_least_one_of: one of Fields must be set (a
// consumer's username or custom_id).
type AtLeastOneOf []string

func (c AtLeastOneOf) run(doc map[string]any, fe FieldErrors) bool {
	for _, f := range c {
		if !isEmpty(getPath(doc, f)) {
			return false
		}
	}
	fe.Entity("at least one of these fields must be non-empty: '" + strings.Join(c, "', '") + "'")
	return false
}

func (c AtLeastOneOf) render() any {
	return map[string]any{"at_least_one_of": stringsToAny(c)}
}

// Distinct is Kong's distinct: the set values among Fields differ (an
// upstream's hash_on_header and hash_fallback_header).
type Distinct []string

func (c Distinct) run(doc map[string]any, fe FieldErrors) bool {
	seen := map[any]bool{}
	for _, f := range c {
		v := doc[f]
		if isEmpty(v) {
			continue
		}
		if seen[v] {
			fe.Entity("values of these fields must be distinct: '" + strings.Join(c, "', '") + "'")
			return false
		}
		seen[v] = true
	}
	return false
}

func (c Distinct) render() any {
	return map[string]any{"distinct": stringsToAny(c)}
}

// MutuallyRequired is Kong's mutually_required: all of Fields are set or
// none (a certificate's cert_alt and key_alt).
type MutuallyRequired []string

func (c MutuallyRequired) run(doc map[string]any, fe FieldErrors) bool {
	if n := countSet(doc, c); n != 0 && n != len(c) {
		fe.Entity("all or none of these fields must be set: '" + strings.Join(c, "', '") + "'")
	}
	return false
}

func (c MutuallyRequired) render() any {
	return map[string]any{"mutually_required": stringsToAny(c)}
}

// MutuallyExclusive is Kong's mutually_exclusive: at most one of Fields
// is set (a key's jwk and pem).
type MutuallyExclusive []string

func (c MutuallyExclusive) run(doc map[string]any, fe FieldErrors) bool {
	if countSet(doc, c) > 1 {
		fe.Entity("only one or none of these fields must be set: '" + strings.Join(c, "', '") + "'")
	}
	return false
}

func (c MutuallyExclusive) render() any {
	return map[string]any{"mutually_exclusive": stringsToAny(c)}
}

// countSet counts the fields that are not empty (Kong's is_nonempty).
func countSet(doc map[string]any, fields []string) int {
	n := 0
	for _, f := range fields {
		if !isEmpty(doc[f]) {
			n++
		}
	}
	return n
}

// OnlyOneOf is Kong's only_one_of: exactly one of Fields is set.
type OnlyOneOf []string

func (c OnlyOneOf) run(doc map[string]any, fe FieldErrors) bool {
	n := 0
	for _, f := range c {
		if !isEmpty(getPath(doc, f)) {
			n++
		}
	}
	if n != 1 {
		fe.Entity("exactly one of these fields must be non-empty: '" + strings.Join(c, "', '") + "'")
	}
	return false
}

func (c OnlyOneOf) render() any {
	return map[string]any{"only_one_of": stringsToAny(c)}
}

// getPath reads a dotted field path ("config.redis.host") from doc.
func getPath(doc map[string]any, path string) any {
	var v any = doc
	for _, part := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	return v
}

// setPath puts msg at a dotted path of fe, nesting as Kong's errors do.
func setPath(fe FieldErrors, path, msg string) {
	parts := strings.Split(path, ".")
	for _, part := range parts[:len(parts)-1] {
		sub, ok := fe[part].(FieldErrors)
		if !ok {
			sub = FieldErrors{}
			fe[part] = sub
		}
		fe = sub
	}
	fe[parts[len(parts)-1]] = msg
}

// CustomCheck is a rule that is code, not data (Kong's custom validators
// in a schema's Lua): it validates but is not rendered.
type CustomCheck func(doc map[string]any, fe FieldErrors)

func (c CustomCheck) run(doc map[string]any, fe FieldErrors) bool {
	c(doc, fe)
	return false
}

func (CustomCheck) render() any { return nil }

// runChecks runs the schema's checks in order until one stops them.
func runChecks(checks []Check, doc map[string]any, fe FieldErrors) {
	for _, c := range checks {
		if c.run(doc, fe) {
			return
		}
	}
}

// renderChecks is "entity_checks" of GET /schemas.
func renderChecks(checks []Check) []any {
	out := []any{}
	for _, c := range checks {
		if r := c.render(); r != nil {
			out = append(out, r)
		}
	}
	return out
}

// RenderedCheck is a check Kong renders as data but whose rule Grapevine
// writes as code (a match_any on patterns, a custom validator in
// then_match): Render is what GET /schemas shows, Run what validates.
type RenderedCheck struct {
	Render any
	Run    func(doc map[string]any, fe FieldErrors)
}

func (c RenderedCheck) run(doc map[string]any, fe FieldErrors) bool {
	c.Run(doc, fe)
	return false
}

func (c RenderedCheck) render() any { return c.Render }
