package plugins

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"strings"

	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// The request as Kong's PDK hands it to Lua (kong/pdk/request.lua),
// rendered as the plain values its tables encode to: request-termination's
// echo writes them as JSON, the Lua sandbox (lua.go) turns them into
// tables.

// maxPDKArgs is lua_max_req_headers' and lua_max_uri_args' default: the
// most headers or arguments get_headers and get_query return.
const maxPDKArgs = 100

// requestHeaders is kong.request.get_headers: names in lower case, a
// header sent more than once as a list.
func requestHeaders(x pdk.Exchange) map[string]any {
	out := map[string]any{}
	n := 0
	x.VisitHeaders(func(name, value []byte) {
		if n++; n <= maxPDKArgs {
			addValue(out, strings.ToLower(string(name)), string(value))
		}
	})
	return out
}

// requestQuery is kong.request.get_query, at most maxPDKArgs arguments.
func requestQuery(x pdk.Exchange) map[string]any {
	return queryMap(firstArgs(string(x.RawQuery()), maxPDKArgs))
}

// firstArgs is raw cut after its nth "&"-separated argument.
func firstArgs(raw string, n int) string {
	for i := range len(raw) {
		if raw[i] == '&' {
			if n--; n == 0 {
				return raw[:i]
			}
		}
	}
	return raw
}

// uriCaptures is kong.request.get_uri_captures: the unnamed groups in
// order (Kong's array of the router's numbered captures, which the atc
// router files for named groups too, and which ends at the first group
// that took no part in the match), the named ones by name.
func uriCaptures(x pdk.Exchange) map[string]any {
	unnamed, named := []any{}, map[string]any{}
	next := 1
	x.URICaptures(func(index int, name string, value []byte) {
		if index == next {
			unnamed = append(unnamed, string(value))
			next++
		}
		if name != "" {
			named[name] = string(value)
		}
	})
	return map[string]any{"unnamed": unnamed, "named": named}
}

// requestBodyValue is kong.request.get_body: a urlencoded form as
// arguments, a JSON object or array decoded, a multipart form's fields by
// name; nil when the body is none of these or does not parse.
func requestBodyValue(x pdk.Exchange) any {
	ct, n := x.Header("Content-Type")
	if n == 0 {
		return nil
	}
	mt, _, _ := strings.Cut(strings.ToLower(string(ct)), ";")
	raw, err := x.Body()
	if err != nil {
		return nil
	}
	switch {
	case strings.HasPrefix(mt, "application/x-www-form-urlencoded"):
		return queryMap(firstArgs(string(raw), maxPDKArgs))
	case strings.HasPrefix(mt, "application/json"):
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return nil
		}
		switch v.(type) {
		case map[string]any, []any:
			return v
		}
		return nil
	case strings.HasPrefix(mt, "multipart/form-data"):
		return multipartFields(raw, string(ct))
	}
	return nil
}

// multipartFields is lua-multipart's get_all_with_arrays: each part's
// content by its name, a name seen twice as a list.
func multipartFields(raw []byte, contentType string) any {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["boundary"] == "" {
		return nil
	}
	out := map[string]any{}
	r := multipart.NewReader(bytes.NewReader(raw), params["boundary"])
	for {
		part, err := r.NextRawPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			return nil
		}
		value, err := io.ReadAll(part)
		if err != nil {
			return nil
		}
		addValue(out, part.FormName(), string(value))
	}
}

// entityTable is an entity as Kong's DAO hands it to plugins: its Admin
// API JSON without the fields that are null (rows are read without
// nulls). nil for a nil entity.
func entityTable(v any) map[string]any {
	raw, err := json.Marshal(v)
	if err != nil || string(raw) == "null" {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	for k, v := range m {
		if v == nil {
			delete(m, k)
		}
	}
	return m
}
