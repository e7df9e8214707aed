package plugins

import (
	"bytes"
	"encoding/json"
	"mime"
	"strconv"
	"strings"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// response-transformer (kong/plugins/response-transformer/handler.lua,
// header_transformer.lua, body_transformer.lua): remove, rename, replace,
// add and append response headers, and the same for the top-level fields
// of a JSON answer, in that order; a JSON answer whose body changes loses
// its Content-Length.

func init() { register("response-transformer", buildResponseTransformer) }

type jsonTransformLists struct {
	JSON      []string `json:"json"`
	JSONTypes []string `json:"json_types"`
	Headers   []string `json:"headers"`
}

type responseTransformerConfig struct {
	Remove  jsonTransformLists `json:"remove"`
	Rename  jsonTransformLists `json:"rename"`
	Replace jsonTransformLists `json:"replace"`
	Add     jsonTransformLists `json:"add"`
	Append  jsonTransformLists `json:"append"`
}

// typedPair is a "name:value" entry with the JSON type its value takes
// ("" when none is given: a string).
type typedPair struct {
	pair
	typ string
}

func typedPairs(l jsonTransformLists) []typedPair {
	out := make([]typedPair, 0, len(l.JSON))
	for i, p := range splitPairs(l.JSON) {
		tp := typedPair{pair: p}
		if i < len(l.JSONTypes) {
			tp.typ = l.JSONTypes[i]
		}
		out = append(out, tp)
	}
	return out
}

type responseTransformer struct {
	headers transformOps
	// The JSON body's operations; remove keeps names only.
	removeJSON                   []string
	renameJSON                   []pair
	replaceJSON, addJSON, append []typedPair
}

func buildResponseTransformer(_ *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	var c responseTransformerConfig
	if err := decodeConfig(p, &c); err != nil {
		return hooks, err
	}
	rt := &responseTransformer{
		headers: transformOps{remove: splitPairs(c.Remove.Headers), rename: splitPairs(c.Rename.Headers),
			replace: splitPairs(c.Replace.Headers), add: splitPairs(c.Add.Headers), append: splitPairs(c.Append.Headers)},
		renameJSON: splitPairs(c.Rename.JSON), replaceJSON: typedPairs(c.Replace),
		addJSON: typedPairs(c.Add), append: typedPairs(c.Append),
	}
	for _, p := range splitPairs(c.Remove.JSON) {
		rt.removeJSON = append(rt.removeJSON, p.name)
	}
	hooks[proxy.PhaseHeaderFilter] = rt.headerFilter
	if rt.transformsBody() {
		hooks[proxy.PhaseBodyFilter] = rt.bodyFilter
	}
	return hooks, nil
}

func (rt *responseTransformer) transformsBody() bool {
	return len(rt.removeJSON)+len(rt.renameJSON)+len(rt.replaceJSON)+len(rt.addJSON)+len(rt.append) > 0
}

// headerFilter is header_transformer.transform_headers: the checks read
// the headers as they were before any change (Kong passes
// kong.response.get_headers() taken first).
func (rt *responseTransformer) headerFilter(x pdk.Exchange) {
	before := map[string]string{}
	for _, p := range append(append(append([]pair{}, rt.headers.rename...), rt.headers.replace...), rt.headers.add...) {
		if v := x.ResponseHeader(p.name); v != nil {
			before[strings.ToLower(p.name)] = string(v)
		}
	}
	for _, p := range rt.headers.remove {
		x.ClearResponseHeader(p.name)
	}
	for _, p := range rt.headers.rename {
		if v, ok := before[strings.ToLower(p.name)]; ok && p.value != "" {
			x.SetResponseHeader(p.value, v)
			x.ClearResponseHeader(p.name)
		}
	}
	for _, p := range rt.headers.replace {
		if _, ok := before[strings.ToLower(p.name)]; ok && p.value != "" {
			x.SetResponseHeader(p.name, p.value)
		}
	}
	for _, p := range rt.headers.add {
		if _, ok := before[strings.ToLower(p.name)]; !ok && p.value != "" {
			x.SetResponseHeader(p.name, p.value)
		}
	}
	for _, p := range rt.headers.append {
		x.AddResponseHeader(p.name, p.value)
	}
	if rt.transformsBody() && isJSONContentType(x.ResponseHeader("Content-Type")) {
		x.ClearResponseHeader("Content-Length")
	}
}

// isJSONContentType is header_transformer.is_json_body: any of the
// comma-separated types is application/json or application/*+json.
func isJSONContentType(ct []byte) bool {
	for part := range strings.SplitSeq(string(ct), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json") {
			return true
		}
	}
	return false
}

// bodyFilter is body_transformer.transform_json_body on a buffered JSON
// answer; one that does not parse is passed on unchanged (Kong logs a
// warning).
func (rt *responseTransformer) bodyFilter(x pdk.Exchange) {
	if !isJSONContentType(x.ResponseHeader("Content-Type")) {
		return
	}
	raw := x.ResponseBody()
	if raw == nil {
		return // streamed: not buffered, not transformed
	}
	var body map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers pass through as written
	if err := dec.Decode(&body); err != nil || body == nil {
		return
	}
	for _, name := range rt.removeJSON {
		delete(body, name)
	}
	for _, p := range rt.renameJSON {
		if v, ok := body[p.name]; ok && v != nil && p.value != "" {
			body[p.value] = v
			delete(body, p.name)
		}
	}
	for _, p := range rt.replaceJSON {
		if v, ok := jsonValue(p); ok && truthy(body[p.name]) {
			body[p.name] = v
		}
	}
	for _, p := range rt.addJSON {
		if v, ok := jsonValue(p); ok && !truthy(body[p.name]) {
			body[p.name] = v
		}
	}
	for _, p := range rt.append {
		if v, ok := jsonValue(p); ok {
			body[p.name] = appendJSONValue(body[p.name], v)
		}
	}
	out, err := json.Marshal(body)
	if err != nil {
		return
	}
	x.SetResponseBody(out)
}

// jsonValue is the handler's json_value: the configured text, cast by its
// json_type; false when there is no value (a number that is not one).
func jsonValue(p typedPair) (any, bool) {
	switch p.typ {
	case "number":
		if _, err := strconv.ParseFloat(p.value, 64); err != nil {
			return nil, false
		}
		return json.Number(p.value), true
	case "boolean":
		return p.value == "true", true
	}
	return p.value, true
}

// truthy is Lua's truth of a decoded JSON value: anything but nil (null
// or absent) and false.
func truthy(v any) bool {
	if b, ok := v.(bool); ok {
		return b
	}
	return v != nil
}
