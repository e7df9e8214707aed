package plugins

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// requestBody is a request body parsed as kong.request.get_body parses
// it: a urlencoded form or a JSON object (multipart is not read).
type requestBody struct {
	form url.Values     // set for application/x-www-form-urlencoded
	json map[string]any // set for application/json
}

// parseBody reads and parses the request body; ok is false when its type
// is neither, or it does not parse (Kong's get_body error).
func parseBody(x pdk.Exchange) (requestBody, bool) {
	ct, _ := x.Header("Content-Type")
	mt, _, _ := strings.Cut(strings.ToLower(string(ct)), ";")
	mt = strings.TrimSpace(mt)
	raw, err := x.Body()
	if err != nil {
		return requestBody{}, false
	}
	switch {
	case strings.HasPrefix(mt, "application/x-www-form-urlencoded"):
		form, err := url.ParseQuery(string(raw))
		return requestBody{form: form}, err == nil
	case strings.HasPrefix(mt, "application/json"):
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return requestBody{}, false
		}
		return requestBody{json: obj}, true
	}
	return requestBody{}, false
}

// str is the body's value of name when it is one string; n counts the
// values (a repeated form field, or a JSON array, is more than one).
func (b requestBody) str(name string) (value string, n int) {
	if b.form != nil {
		vs := b.form[name]
		if len(vs) == 0 {
			return "", 0
		}
		return vs[0], len(vs)
	}
	switch v := b.json[name].(type) {
	case string:
		return v, 1
	case []any:
		return "", len(v) + 1 // a table: never one string
	}
	return "", 0
}

// without re-encodes the body without name, and its content type.
func (b requestBody) without(name string) ([]byte, string) {
	if b.form != nil {
		delete(b.form, name)
		return []byte(b.form.Encode()), ""
	}
	delete(b.json, name)
	out, _ := json.Marshal(b.json)
	return out, ""
}

// queryWithout is a raw query string less every argument named name,
// the others kept as sent.
func queryWithout(raw []byte, name string) string {
	var out []byte
	for len(raw) > 0 {
		var pair []byte
		pair, raw, _ = bytes.Cut(raw, []byte{'&'})
		k, _, _ := bytes.Cut(pair, []byte{'='})
		if key, err := url.QueryUnescape(string(k)); err == nil && key == name {
			continue
		}
		if len(out) > 0 {
			out = append(out, '&')
		}
		out = append(out, pair...)
	}
	return string(out)
}
