package entity

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Code is Kong's numeric error code (kong/db/errors.lua).
type Code int

// Kong's error codes; the admin package maps each to an HTTP status.
const (
	CodeInvalidPrimaryKey     Code = 1
	CodeSchemaViolation       Code = 2
	CodePrimaryKeyViolation   Code = 3
	CodeForeignKeyViolation   Code = 4
	CodeUniqueViolation       Code = 5
	CodeNotFound              Code = 6
	CodeInvalidOffset         Code = 7
	CodeDatabaseError         Code = 8
	CodeInvalidSize           Code = 9
	CodeInvalidUnique         Code = 10
	CodeInvalidOptions        Code = 11
	CodeOperationUnsupported  Code = 12
	CodeForeignKeysUnresolved Code = 13
	CodeReferencedByOthers    Code = 19
)

var codeNames = map[Code]string{
	CodeInvalidPrimaryKey:     "invalid primary key",
	CodeSchemaViolation:       "schema violation",
	CodePrimaryKeyViolation:   "primary key violation",
	CodeForeignKeyViolation:   "foreign key violation",
	CodeUniqueViolation:       "unique constraint violation",
	CodeNotFound:              "not found",
	CodeInvalidOffset:         "invalid offset",
	CodeDatabaseError:         "database error",
	CodeInvalidSize:           "invalid size",
	CodeInvalidUnique:         "invalid unique",
	CodeInvalidOptions:        "invalid options",
	CodeOperationUnsupported:  "operation unsupported",
	CodeForeignKeysUnresolved: "foreign keys unresolved",
	CodeReferencedByOthers:    "referenced by others",
}

// Error is Kong's structured error body:
// {"code":2,"name":"schema violation","message":"…","fields":{…}}.
type Error struct {
	Code    Code           `json:"code"`
	Name    string         `json:"name"`
	Message string         `json:"message"`
	Fields  map[string]any `json:"fields,omitempty"`
	Options map[string]any `json:"options,omitempty"`
}

func (e *Error) Error() string { return e.Message }

func newError(code Code, msg string) *Error {
	return &Error{Code: code, Name: codeNames[code], Message: msg}
}

// FieldErrors collects field errors in Kong's nesting: a value is a string
// (the message), a FieldErrors (record/foreign) or a []any with nil holes
// (array elements); "@entity" holds entity-level messages.
type FieldErrors map[string]any

const entityKey = "@entity"

// Entity appends an entity-level message.
func (fe FieldErrors) Entity(msg string) {
	list, _ := fe[entityKey].([]any)
	fe[entityKey] = append(list, msg)
}

// SchemaViolation builds the code 2 error; nil if there are no errors.
func SchemaViolation(fe FieldErrors) *Error {
	if len(fe) == 0 {
		return nil
	}
	msgs := flattenErrors(fe)
	msg := "schema violation (" + strings.Join(msgs, "; ") + ")"
	if len(msgs) > 1 {
		msg = strconv.Itoa(len(msgs)) + " schema violations (" + strings.Join(msgs, "; ") + ")"
	}
	e := newError(CodeSchemaViolation, msg)
	e.Fields = fe
	return e
}

// flattenErrors renders "@entity" messages first, then "a.b.1: msg" sorted.
func flattenErrors(fe FieldErrors) []string {
	var out []string
	if list, ok := fe[entityKey].([]any); ok {
		for _, m := range list {
			out = append(out, fmt.Sprint(m))
		}
	}
	var fields []string
	for k, v := range fe {
		if k != entityKey {
			fields = appendFlat(fields, k, v)
		}
	}
	sort.Strings(fields)
	return append(out, fields...)
}

func appendFlat(out []string, prefix string, v any) []string {
	switch t := v.(type) {
	case string:
		return append(out, prefix+": "+t)
	case FieldErrors:
		for k, sub := range t {
			if k == entityKey {
				for _, m := range sub.([]any) {
					out = append(out, prefix+": "+fmt.Sprint(m))
				}
				continue
			}
			out = appendFlat(out, prefix+"."+k, sub)
		}
	case []any:
		for i, sub := range t {
			if sub != nil {
				out = appendFlat(out, prefix+"."+strconv.Itoa(i+1), sub)
			}
		}
	}
	return out
}

// LuaKey renders a key the way Kong prints Lua tables: {name="foo"}.
func LuaKey(field, value string) string {
	return "{" + field + "=" + strconv.Quote(value) + "}"
}

// UniqueViolation is code 5: UNIQUE violation detected on '{name="foo"}'.
func UniqueViolation(field, value string) *Error {
	e := newError(CodeUniqueViolation, "UNIQUE violation detected on '"+LuaKey(field, value)+"'")
	e.Fields = FieldErrors{field: value}
	return e
}

// ScopedUniqueViolation is code 5 for a key unique within a parent,
// Kong's cache_key violation: UNIQUE violation detected on
// '{target="a:80",upstream={id="…"}}' (keys in order, as penlight's
// pretty printer writes them).
func ScopedUniqueViolation(field, value, scope, scopeID string) *Error {
	parts := map[string]string{
		field: field + "=" + strconv.Quote(value),
		scope: scope + "=" + LuaKey("id", scopeID),
	}
	keys := []string{field, scope}
	sort.Strings(keys)
	e := newError(CodeUniqueViolation, "UNIQUE violation detected on '{"+parts[keys[0]]+","+parts[keys[1]]+"}'")
	e.Fields = FieldErrors{field: value, scope: FieldErrors{"id": scopeID}}
	return e
}

// PrimaryKeyViolation is code 3.
func PrimaryKeyViolation(id string) *Error {
	e := newError(CodePrimaryKeyViolation, "primary key violation on key '"+LuaKey("id", id)+"'")
	e.Fields = FieldErrors{"id": id}
	return e
}

// ForeignKeyViolation is code 4 on write: the referenced row does not exist.
func ForeignKeyViolation(field, refTable, id string) *Error {
	e := newError(CodeForeignKeyViolation, fmt.Sprintf(
		"the foreign key '%s' does not reference an existing '%s' entity.", LuaKey("id", id), refTable))
	e.Fields = FieldErrors{field: FieldErrors{"id": id}}
	return e
}

// ReferencedBy is code 4 on delete: another entity still points here.
func ReferencedBy(table, by string) *Error {
	e := newError(CodeForeignKeyViolation, fmt.Sprintf(
		"an existing '%s' entity references this '%s' entity", by, table))
	e.Fields = FieldErrors{"@referenced_by": by}
	return e
}

// OperationUnsupported is Kong's code 12: a write a DB-less node does not
// take (kong/db/strategies/off/init.lua).
func OperationUnsupported(msg string) *Error { return newError(CodeOperationUnsupported, msg) }

// ReferencedByOthers is code 19, a delete refused by a kind's own rule
// (a CA certificate a service still trusts); msg is Kong's whole message.
func ReferencedByOthers(msg string) *Error { return newError(CodeReferencedByOthers, msg) }

// ForeignKeyUnresolved is code 13: {"name": …} names no existing entity.
func ForeignKeyUnresolved(field, keyField, value, refTable string) *Error {
	msg := fmt.Sprintf("the foreign key cannot be resolved with '%s' for an existing '%s' entity",
		LuaKey(keyField, value), refTable)
	e := newError(CodeForeignKeysUnresolved, "foreign key unresolved ("+field+"."+keyField+": "+msg+")")
	e.Fields = FieldErrors{field: FieldErrors{keyField: msg}}
	return e
}

// InvalidSize is code 9.
func InvalidSize(msg string) *Error { return newError(CodeInvalidSize, msg) }

// InvalidOffset is code 7; reason is Kong's "bad base64 encoding" or "bad
// json encoding".
func InvalidOffset(offset, reason string) *Error {
	return newError(CodeInvalidOffset, fmt.Sprintf("'%s' is not a valid offset: %s", offset, reason))
}

// InvalidOptions is code 11; it carries "options" instead of "fields".
func InvalidOptions(option, msg string) *Error {
	e := newError(CodeInvalidOptions, "invalid option ("+option+": "+msg+")")
	e.Options = map[string]any{option: msg}
	return e
}

// InvalidPrimaryKey is code 1.
func InvalidPrimaryKey(id string) *Error {
	e := newError(CodeInvalidPrimaryKey, "invalid primary key: '"+LuaKey("id", id)+"'")
	e.Fields = FieldErrors{"id": "expected a valid UUID"}
	return e
}

// InvalidUnique is code 10: a value looked up by a unique field that the
// field's own rules refuse. Kong names the field in the error's name,
// "invalid unique name" (kong/db/errors.lua invalid_unique).
func InvalidUnique(field, msg string) *Error {
	e := newError(CodeInvalidUnique, msg)
	e.Name = codeNames[CodeInvalidUnique] + " " + field
	return e
}
