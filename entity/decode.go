package entity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Body decoding errors; the admin package maps them to HTTP statuses.
var (
	ErrUnsupportedContentType = errors.New("unsupported content type")
	ErrMalformedJSON          = errors.New("cannot parse JSON body")
	ErrMalformedForm          = errors.New("cannot parse form body")
	// ErrFormTooDeep is a form key with more than MaxNesting levels.
	ErrFormTooDeep = errors.New("cannot parse form body: a key nests deeper than " + strconv.Itoa(MaxNesting) + " levels")
	// ErrTooManyArguments is a form with more than MaxFormArgs arguments.
	ErrTooManyArguments = errors.New("too many arguments")
)

const (
	// maxFormMemory bounds multipart parsing; admin bodies are small.
	maxFormMemory = 8 << 20
	// MaxNesting is the deepest a body may nest, in JSON arrays and objects
	// or in the levels of one form key: lua-cjson's decode_max_depth, which
	// Kong's JSON bodies are held to. It also bounds every recursion over
	// a decoded body, so no body can exhaust the stack.
	MaxNesting = 1000
	// MaxFormArgs is Kong's max_post_args (kong/api/arguments.lua): a form
	// with more arguments is refused.
	MaxFormArgs = 1000
)

// DecodeBody turns a request body into a document for s, the way Kong's
// Admin API does for JSON, urlencoded and multipart bodies. An empty body
// decodes to an empty document whatever the content type.
func DecodeBody(contentType string, body []byte, s *Schema) (map[string]any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return map[string]any{}, nil
	}
	if contentType == "" {
		return decodeJSON(body)
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("content type %q: %w", contentType, ErrUnsupportedContentType)
	}
	switch mt {
	case "application/json":
		return decodeJSON(body)
	case "application/x-www-form-urlencoded":
		return decodeURLEncoded(body, s)
	case "multipart/form-data":
		return decodeMultipart(body, params["boundary"], s)
	}
	return nil, fmt.Errorf("content type %q: %w", mt, ErrUnsupportedContentType)
}

func decodeURLEncoded(body []byte, s *Schema) (map[string]any, error) {
	if countFormArgs(body) > MaxFormArgs {
		return nil, fmt.Errorf("urlencoded body: %w", ErrTooManyArguments)
	}
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("urlencoded body: %w", ErrMalformedForm)
	}
	return DecodeForm(values, s)
}

// countFormArgs counts the non-empty &-separated arguments, as nginx's
// get_post_args does, before anything is allocated for them.
func countFormArgs(body []byte) int {
	n := 0
	for len(body) > 0 {
		i := bytes.IndexByte(body, '&')
		if i < 0 {
			return n + 1
		}
		if i > 0 {
			n++
		}
		body = body[i+1:]
	}
	return n
}

func decodeJSON(body []byte) (map[string]any, error) {
	// Go's decoder would turn invalid utf-8 into U+FFFD and so store
	// something other than what was sent.
	if !utf8.Valid(body) {
		return nil, fmt.Errorf("json body: invalid utf-8: %w", ErrMalformedJSON)
	}
	// lua-cjson refuses half a surrogate pair (json_append_unicode_escape);
	// Go's decoder would store U+FFFD for it.
	if hasLoneSurrogate(body) {
		return nil, fmt.Errorf("json body: \\u escape of a lone utf-16 surrogate: %w", ErrMalformedJSON)
	}
	if jsonDepth(body) > MaxNesting {
		return nil, fmt.Errorf("json body: nests deeper than %d levels: %w", MaxNesting, ErrMalformedJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil || doc == nil {
		return nil, fmt.Errorf("json body: %w", ErrMalformedJSON)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("json body: trailing data: %w", ErrMalformedJSON)
	}
	return doc, nil
}

// hasLoneSurrogate reports a \u escape inside a string that is a UTF-16
// surrogate not completed by its pair: a low one alone, or a high one not
// followed by a \u escape of a low one.
func hasLoneSurrogate(body []byte) bool {
	inString := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\':
			n := escapeLen(body[i:])
			if n < 0 {
				return true
			}
			i += n - 1
		}
	}
	return false
}

// escapeLen is the length of the escape b starts with (b[0] is the
// backslash), or -1 for a lone surrogate. A malformed \u escape counts as
// two bytes: the JSON decoder reports it.
func escapeLen(b []byte) int {
	if len(b) < 2 || b[1] != 'u' {
		return 2
	}
	u, ok := hex4(b[2:])
	switch {
	case !ok:
		return 2
	case u < 0xD800 || u > 0xDFFF:
		return 6
	case u >= 0xDC00:
		return -1
	}
	if len(b) < 8 || b[6] != '\\' || b[7] != 'u' {
		return -1
	}
	if lo, ok := hex4(b[8:]); !ok || lo < 0xDC00 || lo > 0xDFFF {
		return -1
	}
	return 12
}

// hex4 decodes the four hex digits b starts with.
func hex4(b []byte) (int, bool) {
	if len(b) < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[:4]), 16, 16)
	return int(v), err == nil
}

// jsonDepth is the deepest nesting of arrays and objects in body, counted
// without decoding it; brackets inside strings do not count.
func jsonDepth(body []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range body {
		switch {
		case escaped:
			escaped = false
		case inString:
			escaped = c == '\\'
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

func decodeMultipart(body []byte, boundary string, s *Schema) (map[string]any, error) {
	if boundary == "" {
		return nil, fmt.Errorf("multipart body without boundary: %w", ErrMalformedForm)
	}
	form, err := multipart.NewReader(bytes.NewReader(body), boundary).ReadForm(maxFormMemory)
	if err != nil {
		return nil, fmt.Errorf("multipart body: %w", ErrMalformedForm)
	}
	defer form.RemoveAll()
	return DecodeForm(url.Values(form.Value), s)
}

// DecodeForm builds a document from form values: dotted keys nest
// (service.id), a[]= and a[1]= and repeated keys make arrays, and values
// are typed by the schema (kong/api/arguments.lua infer_value). A key of
// more than MaxNesting levels gives ErrFormTooDeep before anything is built,
// so the recursive helpers below never go deeper than MaxNesting.
func DecodeForm(values url.Values, s *Schema) (map[string]any, error) {
	root := map[string]any{}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		toks, ok := parseFormKey(k)
		if !ok {
			return nil, ErrFormTooDeep
		}
		for _, v := range values[k] {
			root[toks[0].key] = putForm(root[toks[0].key], toks[1:], v)
		}
	}
	doc := finishForm(root).(map[string]any)
	doc = inferRecord(s.Fields, doc)
	// A record typed by another field (a plugin's config by its name) is
	// typed by that subschema's fields too: config.second=5 is a number.
	if s.Subschema != nil {
		if name, ok := doc[s.SubschemaKey].(string); ok {
			if sub := s.Subschema(name); sub != nil {
				doc = inferRecord(sub.Fields, doc)
			}
		}
	}
	return doc, nil
}

type tokKind int

const (
	tokKey tokKind = iota
	tokIndex
	tokAppend
)

type formTok struct {
	kind tokKind
	key  string
	idx  int
}

// parseFormKey splits "a.b[1][]" into a, .b, [1], []; false when the key
// has more than MaxNesting levels below its name. It stops reading there,
// so a key of millions of levels costs no more than one of MaxNesting.
func parseFormKey(k string) ([]formTok, bool) {
	end := strings.IndexAny(k, ".[")
	if end <= 0 {
		return []formTok{{kind: tokKey, key: k}}, true
	}
	toks := []formTok{{kind: tokKey, key: k[:end]}}
	rest := k[end:]
	for rest != "" {
		if len(toks) > MaxNesting {
			return nil, false
		}
		var t formTok
		t, rest = nextFormTok(rest)
		toks = append(toks, t)
	}
	return toks, true
}

func nextFormTok(rest string) (formTok, string) {
	if rest[0] == '[' {
		close := strings.IndexByte(rest, ']')
		if close < 0 {
			return formTok{kind: tokKey, key: rest}, ""
		}
		inner := rest[1:close]
		if inner == "" {
			return formTok{kind: tokAppend}, rest[close+1:]
		}
		if n, err := strconv.Atoi(inner); err == nil && n >= 0 {
			return formTok{kind: tokIndex, idx: n}, rest[close+1:]
		}
		return formTok{kind: tokKey, key: inner}, rest[close+1:]
	}
	rest = rest[1:] // skip '.'
	end := strings.IndexAny(rest, ".[")
	if end < 0 {
		return formTok{kind: tokKey, key: rest}, ""
	}
	return formTok{kind: tokKey, key: rest[:end]}, rest[end:]
}

// formArray collects a[1]= (indexed) and a[]= / repeated (tail) values.
type formArray struct {
	indexed map[int]any
	tail    []any
}

func putForm(node any, toks []formTok, v string) any {
	if len(toks) == 0 {
		return appendLeaf(node, v)
	}
	t := toks[0]
	if t.kind == tokKey {
		m, ok := node.(map[string]any)
		if !ok {
			m = map[string]any{}
		}
		m[t.key] = putForm(m[t.key], toks[1:], v)
		return m
	}
	a, ok := node.(*formArray)
	if !ok {
		a = &formArray{indexed: map[int]any{}}
		if node != nil {
			a.tail = append(a.tail, node)
		}
	}
	if t.kind == tokIndex {
		a.indexed[t.idx] = putForm(a.indexed[t.idx], toks[1:], v)
		return a
	}
	a.tail = append(a.tail, putForm(nil, toks[1:], v))
	return a
}

func appendLeaf(node any, v string) any {
	switch n := node.(type) {
	case nil:
		return v
	case *formArray:
		n.tail = append(n.tail, v)
		return n
	}
	return &formArray{indexed: map[int]any{}, tail: []any{node, v}}
}

// finishForm turns formArrays into []any, indexed entries first in order.
func finishForm(node any) any {
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			n[k] = finishForm(v)
		}
		return n
	case *formArray:
		idx := make([]int, 0, len(n.indexed))
		for i := range n.indexed {
			idx = append(idx, i)
		}
		sort.Ints(idx)
		out := make([]any, 0, len(idx)+len(n.tail))
		for _, i := range idx {
			out = append(out, finishForm(n.indexed[i]))
		}
		for _, v := range n.tail {
			out = append(out, finishForm(v))
		}
		return out
	}
	return node
}

func inferRecord(fields []Field, m map[string]any) map[string]any {
	for k, v := range m {
		for i := range fields {
			if fields[i].Name == k {
				m[k] = inferValue(&fields[i], v)
			}
		}
	}
	return m
}

// inferValue types a form value by its field: "" is null, numbers and
// booleans are parsed, a scalar given for an array becomes one element.
func inferValue(f *Field, v any) any {
	if f == nil {
		return v
	}
	switch t := v.(type) {
	case string:
		return inferString(f, t)
	case []any:
		if f.Type != TypeArray && f.Type != TypeSet {
			return v
		}
		for i := range t {
			t[i] = inferValue(f.Elements, t[i])
		}
		return t
	case map[string]any:
		return inferMap(f, t)
	}
	return v
}

func inferString(f *Field, s string) any {
	if s == "" {
		return nil
	}
	switch f.Type {
	case TypeInteger, TypeNumber:
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
		if x, err := strconv.ParseFloat(s, 64); err == nil {
			return x
		}
	case TypeBoolean:
		if s == "true" {
			return true
		}
		if s == "false" {
			return false
		}
	case TypeArray, TypeSet:
		if el := inferValue(f.Elements, s); el != nil {
			return []any{el}
		}
		return nil
	}
	return s
}

func inferMap(f *Field, m map[string]any) any {
	switch f.Type {
	case TypeRecord:
		return inferRecord(f.Fields, m)
	case TypeMap:
		for k, v := range m {
			m[k] = inferValue(f.Values, v)
		}
	case TypeForeign:
		for k, v := range m {
			if s, ok := v.(string); ok && s == "" {
				m[k] = nil
			}
		}
		if allNil(m) {
			return nil
		}
	}
	return m
}

func allNil(m map[string]any) bool {
	for _, v := range m {
		if v != nil {
			return false
		}
	}
	return true
}
