// Package declarative reads and writes Kong's declarative configuration
// format (kong/db/schema/others/declarative_config.lua, kong/db/declarative
// in Kong 3.9): one YAML or JSON document, `_format_version: "3.0"`, with
// the entities of every registered kind either at the top level (foreign
// keys as an id or an endpoint key) or nested under their parent (routes
// and plugins under their service, credentials under their consumer,
// targets under their upstream, SNIs under their certificate). The nesting
// is derived from the registry's foreign keys (entity.Referrers), as Kong
// derives it from its schemas, never listed kind by kind.
//
// Parse validates every entity with the same schemas as the Admin API and
// returns the whole configuration, flat, in import order; Export writes
// stored rows back in the nested layout. The package does no I/O beyond
// what it is handed.
package declarative

import (
	"fmt"
	"strings"
)

// FormatVersion is the only _format_version this package reads and writes.
const FormatVersion = "3.0"

// MaxSize is the largest document Parse reads: ten thousand services, each
// with a route, a plugin and a consumer with a key, take about a tenth of
// it.
const MaxSize = 64 << 20

// FieldError is one message about one field of an entity; Field is "" for
// a message about the entity as a whole.
type FieldError struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	Type    string `json:"type"` // "field" or "entity", as Kong's flattened errors
}

// EntityError is what is wrong with one entity of the file.
type EntityError struct {
	Kind   string         // table name, e.g. "routes"
	Path   string         // where it is in the file, e.g. "services[3].routes[1]"
	Line   int            // the line its record starts on; 0 if unknown
	ID     string         // its id, if it has one
	Name   string         // its endpoint key's value, if any
	Entity map[string]any // the entity as given, without nested children
	Errors []FieldError
}

// Error is a refused document: a message about the document as a whole
// (invalid YAML, too big, a missing _format_version) or the entities that
// are wrong, each named with its kind, place, line and fields.
type Error struct {
	Message  string
	Entities []EntityError
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("declarative config is invalid")
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	for _, ent := range e.Entities {
		for _, fe := range ent.Errors {
			b.WriteString("\n  ")
			if ent.Line > 0 {
				fmt.Fprintf(&b, "line %d: ", ent.Line)
			}
			b.WriteString(ent.Path)
			if ent.Name != "" {
				fmt.Fprintf(&b, " (%q)", ent.Name)
			}
			if fe.Field != "" {
				b.WriteString(" field " + fe.Field)
			}
			b.WriteString(": " + fe.Message)
		}
	}
	return b.String()
}

// docError is an Error about the document as a whole.
func docError(format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...)}
}
