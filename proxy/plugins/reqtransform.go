package plugins

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"strings"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/luasandbox"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// request-transformer (kong/plugins/request-transformer/access.lua):
// remove, rename, replace, add and append request headers, query
// arguments and form or JSON body fields, in that order within each, and
// change the method and the path; uri first, then the method, headers,
// body and query, as Kong's execute runs them.

func init() { register("request-transformer", buildRequestTransformer) }

type transformLists struct {
	Body        []string `json:"body"`
	Headers     []string `json:"headers"`
	Querystring []string `json:"querystring"`
}

type requestTransformerConfig struct {
	HTTPMethod *string        `json:"http_method"`
	Remove     transformLists `json:"remove"`
	Rename     transformLists `json:"rename"`
	Replace    struct {
		transformLists
		URI *string `json:"uri"`
	} `json:"replace"`
	Add    transformLists `json:"add"`
	Append transformLists `json:"append"`
}

// pair is one "name:value" entry, split as the handler's
// ^([^:]+):*(.-)$ does; tmpl is set when the value is a template with
// expressions.
type pair struct {
	name, value string
	tmpl        *luasandbox.Template
}

func splitPairs(list []string) []pair {
	out := make([]pair, 0, len(list))
	for _, s := range list {
		name, value, _ := strings.Cut(s, ":")
		out = append(out, pair{name: name, value: strings.TrimLeft(value, ":")})
	}
	return out
}

// transformOps are one target's (headers, query or body) operations.
type transformOps struct {
	remove, rename, replace, add, append []pair
}

func (o *transformOps) empty() bool {
	return len(o.remove)+len(o.rename)+len(o.replace)+len(o.add)+len(o.append) == 0
}

type requestTransformer struct {
	method               string
	uri                  string
	setURI               bool
	headers, query, body transformOps
	// templates renders the $(…) values; nil when there are none.
	templates *transformTemplates
}

func buildRequestTransformer(env *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	var c requestTransformerConfig
	if err := decodeConfig(p, &c); err != nil {
		return hooks, err
	}
	rt := &requestTransformer{}
	if c.HTTPMethod != nil {
		rt.method = strings.ToUpper(*c.HTTPMethod)
	}
	if c.Replace.URI != nil && *c.Replace.URI != "" {
		rt.uri, rt.setURI = *c.Replace.URI, true
	}
	ops := func(get func(*transformLists) []string) transformOps {
		return transformOps{remove: splitPairs(get(&c.Remove)), rename: splitPairs(get(&c.Rename)),
			replace: splitPairs(get(&c.Replace.transformLists)), add: splitPairs(get(&c.Add)), append: splitPairs(get(&c.Append))}
	}
	rt.headers = ops(func(l *transformLists) []string { return l.Headers })
	rt.query = ops(func(l *transformLists) []string { return l.Querystring })
	rt.body = ops(func(l *transformLists) []string { return l.Body })
	rt.compileTemplates(env, "request-transformer "+p.ID)
	hooks[proxy.PhaseAccess] = rt.access
	return hooks, nil
}

func (rt *requestTransformer) access(x pdk.Exchange) {
	if rt.templates != nil {
		rendered, err := rt.templates.render(rt, x)
		if err != nil {
			// Kong's render error is a Lua error in the access phase.
			x.Error(500, "An unexpected error occurred")
			return
		}
		rt = rendered
	}
	if rt.setURI {
		x.SetUpstreamPath(rt.uri)
	}
	var q *orderedArgs // the query sent upstream, once changed
	if rt.method != "" {
		x.SetUpstreamMethod(rt.method)
		if rt.method == "GET" || rt.method == "HEAD" || rt.method == "TRACE" {
			q = rt.formIntoQuery(x)
		}
	}
	rt.transformHeaders(x)
	rt.transformBody(x)
	if !rt.query.empty() {
		if q == nil {
			q = parseArgs(string(x.RawQuery()))
		}
		q.apply(&rt.query)
	}
	if q != nil {
		x.SetUpstreamQuery(q.encode())
	}
}

// formIntoQuery moves a form body's arguments into the query, added to
// the client's (transform_method); nil when there are none.
func (rt *requestTransformer) formIntoQuery(x pdk.Exchange) *orderedArgs {
	if bodyKind(x) != "form" {
		return nil
	}
	raw, err := x.Body()
	if err != nil || len(raw) == 0 {
		return nil
	}
	form := parseArgs(string(raw))
	if len(form.names) == 0 {
		return nil
	}
	q := parseArgs(string(x.RawQuery()))
	for _, name := range form.names {
		q.set(name, append(q.get(name), form.get(name)...))
	}
	return q
}

// bodyKind is the request's Content-Type as the handler tells them:
// "json", "multipart", "form" or "".
func bodyKind(x pdk.Exchange) string {
	ct, n := x.Header("Content-Type")
	if n == 0 {
		return ""
	}
	ct = bytes.ToLower(ct)
	switch {
	case bytes.Contains(ct, []byte("application/json")):
		return "json"
	case bytes.Contains(ct, []byte("multipart/form-data")):
		return "multipart"
	case bytes.Contains(ct, []byte("application/x-www-form-urlencoded")):
		return "form"
	}
	return ""
}

// transformHeaders is transform_headers over the client's headers: the
// names it touches end up with the values it leaves them (none clears).
func (rt *requestTransformer) transformHeaders(x pdk.Exchange) {
	o := &rt.headers
	if o.empty() {
		return
	}
	state := map[string][]string{} // lower-case name → values, for names touched
	get := func(name string) []string {
		name = strings.ToLower(name)
		if v, ok := state[name]; ok {
			return v
		}
		if name == "host" { // the handler drops host from the table it edits
			return nil
		}
		var vals []string
		x.VisitHeaders(func(k, v []byte) {
			if strings.EqualFold(string(k), name) {
				vals = append(vals, string(v))
			}
		})
		return vals
	}
	set := func(name string, vals []string) { state[strings.ToLower(name)] = vals }
	for _, p := range o.remove {
		set(p.name, nil)
	}
	for _, p := range o.rename {
		if strings.EqualFold(p.name, p.value) {
			continue
		}
		if v := get(p.name); v != nil {
			set(p.name, nil)
			set(p.value, v)
		}
	}
	for _, p := range o.replace {
		if get(p.name) != nil || strings.EqualFold(p.name, "host") {
			set(p.name, []string{p.value})
		}
	}
	for _, p := range o.add {
		if get(p.name) == nil && !strings.EqualFold(p.name, "host") {
			set(p.name, []string{p.value})
		}
	}
	for _, p := range o.append {
		set(p.name, append(slices.Clip(get(p.name)), p.value))
	}
	names := make([]string, 0, len(state))
	for name := range state {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		vals := state[name]
		if len(vals) == 0 {
			x.ClearUpstreamHeader(name)
			continue
		}
		x.SetUpstreamHeader(name, vals[0])
		for _, v := range vals[1:] {
			x.AddUpstreamHeader(name, v)
		}
	}
}

// transformBody is transform_body for form and JSON bodies (multipart
// bodies pass unchanged here).
func (rt *requestTransformer) transformBody(x pdk.Exchange) {
	o := &rt.body
	if o.empty() {
		return
	}
	kind := bodyKind(x)
	if kind != "form" && kind != "json" {
		return
	}
	raw, err := x.Body()
	if err != nil {
		return
	}
	var out []byte
	var changed bool
	if kind == "form" {
		out, changed = transformFormBody(o, raw)
	} else {
		out, changed = transformJSONBody(o, raw)
	}
	if changed {
		x.SetUpstreamBody(out, "")
	}
}

func transformFormBody(o *transformOps, raw []byte) ([]byte, bool) {
	args := parseArgs(string(raw))
	changed := false
	if len(raw) > 0 {
		for _, p := range o.remove {
			args.set(p.name, nil)
			changed = true
		}
		for _, p := range o.rename {
			if p.name != p.value && args.get(p.name) != nil {
				args.set(p.value, args.get(p.name))
				args.set(p.name, nil)
				changed = true
			}
		}
		for _, p := range o.replace {
			if args.get(p.name) != nil {
				args.set(p.name, []string{p.value})
				changed = true
			}
		}
	}
	for _, p := range o.add {
		if args.get(p.name) == nil {
			args.set(p.name, []string{p.value})
			changed = true
		}
	}
	for _, p := range o.append {
		args.set(p.name, append(slices.Clip(args.get(p.name)), p.value))
		changed = true
	}
	return []byte(args.encode()), changed
}

func transformJSONBody(o *transformOps, raw []byte) ([]byte, bool) {
	params := map[string]any{}
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return nil, false
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false // an array or a scalar: no fields to change
		}
		params = obj
	}
	changed := false
	if len(raw) > 0 {
		for _, p := range o.remove {
			delete(params, p.name)
			changed = true
		}
		for _, p := range o.rename {
			if v, ok := params[p.name]; ok && p.name != p.value && luaTruthy(v) {
				delete(params, p.name)
				params[p.value] = v
				changed = true
			}
		}
		for _, p := range o.replace {
			if luaTruthy(params[p.name]) {
				params[p.name] = p.value
				changed = true
			}
		}
	}
	for _, p := range o.add {
		if !luaTruthy(params[p.name]) {
			params[p.name] = p.value
			changed = true
		}
	}
	for _, p := range o.append {
		params[p.name] = appendJSONValue(params[p.name], p.value)
		changed = true
	}
	if !changed {
		return nil, false
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(params) != nil {
		return nil, false
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), true
}

// luaTruthy is a decoded JSON value as Lua tests it: null and false are
// false, everything else true.
func luaTruthy(v any) bool { return v != nil && v != false }

// appendJSONValue is append_value: a string becomes a list of it and the
// value, a list grows, anything else is replaced by a list of the value.
func appendJSONValue(cur, value any) any {
	switch c := cur.(type) {
	case string:
		return []any{c, value}
	case []any:
		return append(c, value)
	}
	return []any{value}
}

// orderedArgs are query or form arguments by name, as Kong's Lua tables
// hold them; encoded sorted by name as kong.service.request.set_query and
// ngx.encode_args write them. A nil value list removes the name; an
// argument without "=" is kept bare.
type orderedArgs struct {
	names []string
	vals  map[string][]string
	bare  map[string]bool
}

func parseArgs(raw string) *orderedArgs {
	a := &orderedArgs{vals: map[string][]string{}, bare: map[string]bool{}}
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, hasValue := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil || name == "" {
			continue
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			value = v
		}
		if !hasValue {
			a.bare[name] = true
		}
		a.set(name, append(a.get(name), value))
	}
	return a
}

func (a *orderedArgs) get(name string) []string { return a.vals[name] }

func (a *orderedArgs) set(name string, vals []string) {
	if vals == nil {
		delete(a.vals, name)
		return
	}
	if _, ok := a.vals[name]; !ok && !slices.Contains(a.names, name) {
		a.names = append(a.names, name)
	}
	a.vals[name] = vals
}

func (a *orderedArgs) encode() string {
	names := slices.Clone(a.names)
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		vals, ok := a.vals[name]
		if !ok {
			continue
		}
		for _, v := range vals {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(escapeURI(name))
			if v == "" && a.bare[name] && len(vals) == 1 {
				continue
			}
			b.WriteByte('=')
			b.WriteString(escapeURI(v))
		}
	}
	return b.String()
}

// escapeURI escapes as ngx.escape_uri does for arguments: all but
// letters, digits and -._~ as %XX.
func escapeURI(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// apply runs the query operations (transform_querystrings).
func (a *orderedArgs) apply(o *transformOps) {
	for _, p := range o.remove {
		a.set(p.name, nil)
	}
	for _, p := range o.rename {
		if p.name != p.value && a.get(p.name) != nil {
			a.set(p.value, a.get(p.name))
			a.set(p.name, nil)
		}
	}
	for _, p := range o.replace {
		if a.get(p.name) != nil {
			a.set(p.name, []string{p.value})
			delete(a.bare, p.name)
		}
	}
	for _, p := range o.add {
		if a.get(p.name) == nil {
			a.set(p.name, []string{p.value})
			delete(a.bare, p.name)
		}
	}
	for _, p := range o.append {
		a.set(p.name, append(slices.Clip(a.get(p.name)), p.value))
	}
}
