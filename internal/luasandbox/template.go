package luasandbox

import (
	"fmt"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Template is a request-transformer value compiled as Penlight's
// pl.template compiles it with the plugin's options (kong/plugins/
// request-transformer/access.lua compile_opts: no "#" lines): text in
// which each $(expr), parentheses balanced, is replaced by
// tostring(expr or ”). There is no escape for a literal "$(": Kong's
// documentation has it written as a template of a string, $('$(x)').
type Template struct {
	text  string             // the value, when it holds no expression
	proto *lua.FunctionProto // nil for a plain value
}

// CompileTemplate compiles value. The error is what pl.template's load
// says of the code it makes (chunk "TMP").
func CompileTemplate(value string) (*Template, error) {
	code, ok := templateCode(value)
	if !ok {
		return &Template{text: value}, nil
	}
	proto, err := compile(code, `[string "TMP"]`)
	if err != nil {
		return nil, err
	}
	return &Template{proto: proto}, nil
}

// Plain is the value of a template without expressions.
func (t *Template) Plain() (string, bool) { return t.text, t.proto == nil }

// templateCode is the Lua code rendering value: its text and
// expressions joined; ok is false when it holds no $(…).
func templateCode(value string) (code string, ok bool) {
	var b strings.Builder
	b.WriteString("return ''")
	rest := value
	for {
		start, end := findExpr(rest)
		if start < 0 {
			break
		}
		ok = true
		fmt.Fprintf(&b, " .. %s .. __tostring((%s) or '')", quote(rest[:start]), rest[start+2:end-1])
		rest = rest[end:]
	}
	fmt.Fprintf(&b, " .. %s", quote(rest))
	return b.String(), ok
}

// findExpr finds the first "$(" whose parentheses balance (Lua's %b()),
// returning where it starts and the end of its closing ")"; -1 for none.
func findExpr(s string) (start, end int) {
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '$' || s[i+1] != '(' {
			continue
		}
		depth := 0
		for j := i + 1; j < len(s); j++ {
			switch s[j] {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				return i, j + 1
			}
		}
	}
	return -1, -1
}

// quote is s as a Lua string literal.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Render runs t in env (which must give __tostring) and returns the text.
func (s *State) Render(t *Template, env *lua.LTable, limit time.Duration) (string, error) {
	if t.proto == nil {
		return t.text, nil
	}
	if current().Mode == "off" { // access.lua param_value
		return "", ErrDisabled
	}
	v, err := s.Run(t.proto, env, limit)
	if err != nil {
		return "", err
	}
	return lua.LVAsString(v), nil
}
