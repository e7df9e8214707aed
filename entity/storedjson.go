package entity

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
)

// A node decodes every stored document of its configuration on each full
// reload: fifty thousand for ten thousand services with a route, a plugin
// and a consumer with a key. encoding/json checks a document in a pass of
// its own before it decodes it again by reflection, which made decoding
// half of a reload. The kinds such configurations are made of have a
// decoder of their own here (storedDecoders): one pass over the bytes,
// strict about JSON's grammar, that takes only what the database returns
// for documents we wrote (objects of known keys; strings are decoded by
// encoding/json when they hold an escape or a byte that is not printable
// ASCII) and gives up on anything else: a duplicate key, a key that
// encoding/json would match to a field case-insensitively, a value of the
// wrong type, a malformed document. The kind's Decode then decodes the
// document with encoding/json as before, so the result, or the error, is
// always encoding/json's (storedjson_test.go compares the two).

// jsonReader reads one JSON document. On anything it does not take it
// sets bad and moves to the end, so every loop over it ends.
type jsonReader struct {
	b   []byte
	i   int
	bad bool
}

// maxStoredDepth bounds the nesting the reader follows; deeper documents
// are left to encoding/json.
const maxStoredDepth = 64

func (r *jsonReader) fail() {
	r.bad = true
	r.i = len(r.b)
}

// peek skips blanks and returns the next byte (0 at the end).
func (r *jsonReader) peek() byte {
	for r.i < len(r.b) {
		c := r.b[r.i]
		if c > ' ' || c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c
		}
		r.i++
	}
	return 0
}

// done reports whether the whole document was read and taken: nothing
// but blanks follows the value.
func (r *jsonReader) done() bool {
	return r.peek() == 0 && r.i == len(r.b) && !r.bad
}

// open consumes the byte opening an object or array.
func (r *jsonReader) open(c byte) bool {
	if r.peek() != c {
		r.fail()
		return false
	}
	r.i++
	return true
}

// more reports whether the object or array closed by end has another
// member, consuming the ',' before it; at the end it consumes end.
func (r *jsonReader) more(end byte, first *bool) bool {
	c := r.peek()
	if c == end {
		// After a ',' the member comes first: "[1,]" fails there.
		r.i++
		return false
	}
	if !*first {
		if c != ',' {
			r.fail()
			return false
		}
		r.i++
	}
	*first = false
	return !r.bad
}

// key reads a member's name and the ':' after it. Names with escapes or
// bytes that are not printable ASCII are left to encoding/json.
func (r *jsonReader) key() []byte {
	if r.peek() != '"' {
		r.fail()
		return nil
	}
	start := r.i + 1
	for j := start; j < len(r.b); j++ {
		c := r.b[j]
		if c == '"' {
			r.i = j + 1
			if r.peek() != ':' {
				r.fail()
				return nil
			}
			r.i++
			return r.b[start:j]
		}
		if c < 0x20 || c >= 0x80 || c == '\\' {
			break
		}
	}
	r.fail()
	return nil
}

// null consumes a null and reports whether there was one.
func (r *jsonReader) null() bool {
	if r.peek() != 'n' {
		return false
	}
	r.literal("null")
	return true
}

func (r *jsonReader) literal(word string) {
	if len(r.b)-r.i < len(word) || string(r.b[r.i:r.i+len(word)]) != word {
		r.fail()
		return
	}
	r.i += len(word)
}

// str reads a string; intern names the strings worth sharing.
func (r *jsonReader) str(intern bool) string {
	if r.peek() != '"' {
		r.fail()
		return ""
	}
	start := r.i + 1
	for j := start; j < len(r.b); j++ {
		c := r.b[j]
		if c == '"' {
			r.i = j + 1
			if intern {
				return internString(r.b[start:j])
			}
			return string(r.b[start:j])
		}
		if c < 0x20 || c >= 0x80 || c == '\\' {
			return r.escapedString()
		}
	}
	r.fail()
	return ""
}

// escapedString has encoding/json decode the string at r.i, as it
// decodes strings in a document: escapes, and invalid UTF-8 replaced.
func (r *jsonReader) escapedString() string {
	end := r.i + 1
	for ; end < len(r.b) && r.b[end] != '"'; end++ {
		if r.b[end] == '\\' {
			end++
		}
	}
	if end >= len(r.b) {
		r.fail()
		return ""
	}
	var s string
	if err := json.Unmarshal(r.b[r.i:end+1], &s); err != nil {
		r.fail()
		return ""
	}
	r.i = end + 1
	return s
}

// number reads a number by JSON's grammar and returns its text; integer
// says it has neither a fraction nor an exponent.
func (r *jsonReader) number() (text []byte, integer bool) {
	r.peek()
	start, j := r.i, r.i
	if j < len(r.b) && r.b[j] == '-' {
		j++
	}
	switch {
	case j < len(r.b) && r.b[j] == '0':
		j++
	case j < len(r.b) && r.b[j] >= '1' && r.b[j] <= '9':
		j = digits(r.b, j)
	default:
		r.fail()
		return nil, false
	}
	integer = true
	if j < len(r.b) && r.b[j] == '.' {
		integer = false
		if k := digits(r.b, j+1); k > j+1 {
			j = k
		} else {
			r.fail()
			return nil, false
		}
	}
	if j < len(r.b) && (r.b[j] == 'e' || r.b[j] == 'E') {
		integer = false
		j++
		if j < len(r.b) && (r.b[j] == '+' || r.b[j] == '-') {
			j++
		}
		if k := digits(r.b, j); k > j {
			j = k
		} else {
			r.fail()
			return nil, false
		}
	}
	r.i = j
	return r.b[start:j], integer
}

func digits(b []byte, j int) int {
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	return j
}

// int reads an integer into an int or int64 field: encoding/json refuses
// a fraction, an exponent or an overflow there, so the reader does too.
func (r *jsonReader) int() int64 {
	text, integer := r.number()
	if !integer {
		r.fail()
		return 0
	}
	n, err := strconv.ParseInt(string(text), 10, 64)
	if err != nil {
		r.fail()
	}
	return n
}

// intField reads an integer into an int field.
func (r *jsonReader) intField() int {
	n := r.int()
	if int64(int(n)) != n {
		r.fail() // past int on a 32-bit platform
	}
	return int(n)
}

// bool reads true or false.
func (r *jsonReader) bool() bool {
	switch r.peek() {
	case 't':
		r.literal("true")
		return true
	case 'f':
		r.literal("false")
		return false
	}
	r.fail()
	return false
}

// stringList reads an array of strings into a []string field: null is nil,
// [] an empty slice, as encoding/json makes them.
func (r *jsonReader) stringList(intern bool) []string {
	if r.null() {
		return nil
	}
	out := []string{}
	first := true
	for r.open('['); r.more(']', &first); {
		if r.peek() == 'n' {
			r.fail() // a null element: left to encoding/json
			return nil
		}
		out = append(out, r.str(intern))
	}
	return out
}

// stringPtr reads a *string field.
func (r *jsonReader) stringPtr() *string {
	if r.null() {
		return nil
	}
	s := r.str(false)
	return &s
}

// foreignKey reads a {"id": …} reference.
func (r *jsonReader) foreignKey() *ForeignKey {
	if r.null() {
		return nil
	}
	fk := &ForeignKey{}
	r.object(foreignKeyFields, func(r *jsonReader, key []byte) int {
		if string(key) == "id" {
			fk.ID = r.str(false)
			return 0
		}
		return -1
	})
	return fk
}

var foreignKeyFields = []string{"id"}

// anyMap reads a map[string]any field (a plugin's config): null is nil.
func (r *jsonReader) anyMap() map[string]any {
	if r.null() {
		return nil
	}
	if r.peek() != '{' {
		r.fail()
		return nil
	}
	m, _ := r.value(0).(map[string]any)
	return m
}

// value reads any JSON value as encoding/json decodes it into an any:
// objects as map[string]any, arrays as []any, numbers as float64.
func (r *jsonReader) value(depth int) any {
	if depth > maxStoredDepth {
		r.fail()
		return nil
	}
	switch c := r.peek(); {
	case c == '{':
		m := map[string]any{}
		first := true
		for r.open('{'); r.more('}', &first); {
			k := internString(r.key())
			m[k] = r.value(depth + 1)
		}
		return m
	case c == '[':
		list := []any{}
		first := true
		for r.open('['); r.more(']', &first); {
			list = append(list, r.value(depth+1))
		}
		return list
	case c == '"':
		return r.str(true)
	case c == 't' || c == 'f':
		return r.bool()
	case c == 'n':
		r.literal("null")
		return nil
	}
	text, _ := r.number()
	if r.bad {
		return nil
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil {
		r.fail()
	}
	return f
}

// object reads an object into a struct: field takes a member's value and
// returns the index of the field it set in names, -1 for a name the
// struct has none of. Such a member is skipped when encoding/json would
// skip it too (no field's name equals it, case aside); a name seen twice
// is left to encoding/json.
func (r *jsonReader) object(names []string, field func(r *jsonReader, key []byte) int) {
	var seen uint64
	first := true
	for r.open('{'); r.more('}', &first); {
		key := r.key()
		if r.bad {
			return
		}
		i := field(r, key)
		switch {
		case i < 0 && foldsToAny(key, names):
			r.fail()
		case i < 0:
			r.value(0) // read to check it, as encoding/json does
		case seen&(1<<i) != 0:
			r.fail()
		default:
			seen |= 1 << i
		}
	}
}

// foldsToAny reports whether key equals a name case-insensitively.
func foldsToAny(key []byte, names []string) bool {
	for _, n := range names {
		if strings.EqualFold(string(key), n) {
			return true
		}
	}
	return false
}

// internString returns the shared copy of a string that configurations
// repeat (field names, protocols, plugin names), else a new one.
func internString(b []byte) string {
	internOnce.Do(buildInterned)
	if s, ok := interned[string(b)]; ok {
		return s
	}
	return string(b)
}

var (
	internOnce sync.Once
	interned   map[string]string
)

// buildInterned collects every field name and every string a field may
// be one of, from the kinds' and the plugins' schemas.
func buildInterned() {
	interned = map[string]string{}
	var walk func(fields []Field)
	walk = func(fields []Field) {
		for _, f := range fields {
			interned[f.Name] = f.Name
			for _, v := range f.OneOf {
				if s, ok := v.(string); ok {
					interned[s] = s
				}
			}
			if s, ok := f.Default.(string); ok {
				interned[s] = s
			}
			walk(f.Fields)
			for _, sub := range []*Field{f.Elements, f.Keys, f.Values} {
				if sub != nil {
					walk([]Field{*sub})
				}
			}
		}
	}
	for _, k := range Kinds() {
		walk(k.Schema.Fields)
	}
	for _, name := range PluginNames() {
		interned[name] = name
		if def, ok := PluginByName(name); ok {
			walk(def.Schema.Fields)
		}
	}
}

// decodeStored is a kind's Decode: its own reader first, encoding/json for
// whatever the reader leaves to it.
func decodeStored[T any](read func(doc []byte) (T, bool)) func([]byte) (any, error) {
	return func(doc []byte) (any, error) {
		if v, ok := read(doc); ok {
			return v, nil
		}
		var v T
		if err := json.Unmarshal(doc, &v); err != nil {
			return nil, err
		}
		return v, nil
	}
}

// boolPtr reads a *bool field.
func (r *jsonReader) boolPtr() *bool {
	if r.null() {
		return nil
	}
	b := r.bool()
	return &b
}

// intPtr reads a *int field.
func (r *jsonReader) intPtr() *int {
	if r.null() {
		return nil
	}
	n := r.intField()
	return &n
}

// headers reads a route's headers: names to lists of strings.
func (r *jsonReader) headers() map[string][]string {
	if r.null() {
		return nil
	}
	m := map[string][]string{}
	first := true
	for r.open('{'); r.more('}', &first); {
		k := string(r.key())
		if r.peek() != '[' {
			r.fail() // null or another type: left to encoding/json
			return nil
		}
		m[k] = r.stringList(false)
	}
	return m
}

// noCIDRPorts reads a route's sources or destinations when null; a list
// (stream routes only) is left to encoding/json.
func (r *jsonReader) noCIDRPorts() []CIDRPort {
	if !r.null() {
		r.fail()
	}
	return nil
}
