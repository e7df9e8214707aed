package plugins

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	lua "github.com/yuin/gopher-lua"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/luasandbox"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// The part of Kong's PDK that untrusted Lua code reads most
// (custom_fields_by_lua, request-transformer's templates): kong.request,
// kong.response, kong.client, kong.router, kong.node, kong.log.serialize
// and a few ngx functions, over a luaView. A view is copied from the
// exchange while the hook runs, so the code can run later, off the
// request's path.

// luaView is what the PDK functions read of one exchange.
type luaView struct {
	method, path, rawQuery, host, scheme, requestURI, httpVersion string
	port                                                          int
	headers, respHeaders                                          []luaHeader
	status                                                        int
	source                                                        string // kong.response.get_source
	clientIP                                                      string
	consumer                                                      *pdk.Consumer
	credential                                                    *pdk.Credential
	route                                                         *entity.Route
	service                                                       *entity.Service
	captures                                                      []luaCapture
	startedAt                                                     time.Time
	record                                                        []byte // kong.log.serialize's, JSON; nil outside the log phase
}

type luaHeader struct{ name, value string }

type luaCapture struct {
	index       int
	name, value string
}

// viewOf copies what the PDK reads of x.
func viewOf(x pdk.Exchange, logPhase bool) *luaView {
	v := &luaView{method: string(x.Method()), path: string(x.Path()), rawQuery: string(x.RawQuery()),
		host: string(x.Host()), scheme: x.Scheme(), requestURI: string(x.RequestURI()),
		httpVersion: x.HTTPVersion(), port: x.Port(), clientIP: x.ClientIP().String(),
		consumer: x.Consumer(), credential: x.Credential(), route: x.Route(), service: x.Service()}
	x.VisitHeaders(func(name, value []byte) { v.headers = append(v.headers, luaHeader{string(name), string(value)}) })
	x.URICaptures(func(index int, name string, value []byte) {
		v.captures = append(v.captures, luaCapture{index, name, string(value)})
	})
	if logPhase {
		info := x.Log()
		v.status, v.source, v.startedAt = x.Status(), info.Source, info.StartedAt
		x.VisitResponseHeaders(func(name, value []byte) {
			v.respHeaders = append(v.respHeaders, luaHeader{string(name), string(value)})
		})
	}
	return v
}

// headerMap is get_headers' table: names in lower case, repeats as lists.
func headerMap(list []luaHeader) map[string]any {
	out := map[string]any{}
	for i, h := range list {
		if i < maxPDKArgs {
			addValue(out, strings.ToLower(h.name), h.value)
		}
	}
	return out
}

// header is get_header: the first value of name in any case, "_" read
// as "-".
func header(list []luaHeader, name string) (string, bool) {
	name = strings.ReplaceAll(name, "_", "-")
	for _, h := range list {
		if strings.EqualFold(h.name, name) {
			return h.value, true
		}
	}
	return "", false
}

// luaState is a sandbox with the PDK bound to the view of the current
// run.
type luaState struct {
	*luasandbox.State
	view   *luaView
	record map[string]any // the record as custom fields have edited it so far
	// plugin and field name the chunk running, for kong.log's lines.
	plugin, field string
	// ctx holds kong.ctx.shared and kong.ctx.plugin for the request
	// being served; newRequest empties it.
	ctx      *lua.LTable
	env      *Env
	headMeta *lua.LTable // get_headers' table: keys read in any case, "_" as "-"
	tmplMeta *lua.LTable // request-transformer's template environment
}

func newLuaState(env *Env) *luaState {
	s := &luaState{State: luasandbox.New(), env: env}
	L := s.L
	s.headMeta = L.NewTable()
	s.headMeta.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		t, k := L.CheckTable(1), L.Get(2)
		if name, ok := k.(lua.LString); ok {
			L.Push(t.RawGetString(strings.ReplaceAll(strings.ToLower(string(name)), "_", "-")))
			return 1
		}
		L.Push(lua.LNil)
		return 1
	}))
	kong := L.NewTable()
	for name, fns := range map[string]map[string]lua.LGFunction{
		"request":  s.requestFuncs(),
		"response": s.responseFuncs(),
		"client":   s.clientFuncs(),
		"router": {
			"get_route":   func(L *lua.LState) int { return s.push(entityTable(s.view.route)) },
			"get_service": func(L *lua.LState) int { return s.push(entityTable(s.view.service)) },
		},
		"node": {
			"get_id":       func(L *lua.LState) int { return s.push(env.NodeID) },
			"get_hostname": func(L *lua.LState) int { return s.push(env.Hostname) },
		},
		"log": s.logFuncs(),
	} {
		kong.RawSetString(name, s.ReadOnly("kong."+name, L.SetFuncs(L.NewTable(), fns)))
	}
	// kong.ctx.shared and .plugin: tables of this request. Nothing else
	// here writes them, so they start empty.
	ctxMeta := L.NewTable()
	ctxMeta.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		key := L.CheckString(2)
		if key != "shared" && key != "plugin" {
			L.Push(lua.LNil)
			return 1
		}
		t, ok := s.ctx.RawGetString(key).(*lua.LTable)
		if !ok {
			t = L.NewTable()
			s.ctx.RawSetString(key, t)
		}
		L.Push(t)
		return 1
	}))
	kongCtx := L.NewTable()
	L.SetMetatable(kongCtx, ctxMeta)
	kong.RawSetString("ctx", kongCtx)
	s.ctx = L.NewTable()
	s.Base.RawSetString("kong", s.ReadOnly("kong", kong))
	s.Base.RawSetString("ngx", s.ReadOnly("ngx", s.ngxTable()))
	s.tmplMeta = s.templateMeta()
	return s
}

// templateMeta is the metatable of request-transformer's template
// environment (kong/plugins/request-transformer/access.lua execute): in
// the sandbox it holds type, the sandbox's require and pl.template's
// __tostring, and loads headers, query_params, uri_captures and shared
// on first use; it cannot be written.
func (s *luaState) templateMeta() *lua.LTable {
	L := s.L
	meta := L.NewTable()
	fixed := map[string]lua.LValue{"type": s.Base.RawGetString("type"), "require": s.Base.RawGetString("require"),
		"__tostring": L.GetGlobal("tostring")}
	meta.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		t, key := L.CheckTable(1), L.CheckString(2)
		var v lua.LValue = lua.LNil
		switch key {
		case "headers":
			s.pushHeaders(s.view.headers)
			v = L.Get(-1)
			L.Pop(1)
		case "query_params":
			v = toLua(L, queryMap(firstArgs(s.view.rawQuery, maxPDKArgs)))
		case "uri_captures":
			v = s.routerCaptures()
		case "shared": // kong.ctx.shared
			v = L.GetField(L.GetField(s.Base.RawGetString("kong"), "ctx"), "shared")
		default:
			if f, ok := fixed[key]; ok {
				v = f
			} else if luasandbox.Unrestricted() { // untrusted_lua = on: _G[key]
				v = L.GetGlobal(key)
			}
		}
		if v != lua.LNil {
			t.RawSetString(key, v)
		}
		L.Push(v)
		return 1
	}))
	meta.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("This environment is read-only.")
		return 0
	}))
	return meta
}

// newRequest readies s for another request's code: kong.ctx's tables
// start empty.
func (s *luaState) newRequest(v *luaView) {
	s.view = v
	s.ctx = s.L.NewTable()
}

// templateEnv is a fresh template environment for one request.
func (s *luaState) templateEnv() *lua.LTable {
	env := s.L.NewTable()
	s.L.SetMetatable(env, s.tmplMeta)
	return env
}

func (s *luaState) requestFuncs() map[string]lua.LGFunction {
	str := func(get func(v *luaView) string) lua.LGFunction {
		return func(L *lua.LState) int { return s.push(get(s.view)) }
	}
	return map[string]lua.LGFunction{
		"get_method":          str(func(v *luaView) string { return v.method }),
		"get_path":            str(func(v *luaView) string { return v.path }),
		"get_raw_query":       str(func(v *luaView) string { return v.rawQuery }),
		"get_host":            str(func(v *luaView) string { return v.host }),
		"get_scheme":          str(func(v *luaView) string { return v.scheme }),
		"get_path_with_query": str(func(v *luaView) string { return v.requestURI }),
		"get_raw_path": str(func(v *luaView) string {
			p, _, _ := strings.Cut(v.requestURI, "?")
			return p
		}),
		"get_port": func(L *lua.LState) int { return s.push(s.view.port) },
		"get_http_version": func(L *lua.LState) int {
			f, _ := strconv.ParseFloat(s.view.httpVersion, 64)
			return s.push(f)
		},
		"get_start_time": func(L *lua.LState) int { return s.push(s.view.startedAt.UnixMilli()) },
		"get_header": func(L *lua.LState) int {
			if v, ok := header(s.view.headers, L.CheckString(1)); ok {
				return s.push(v)
			}
			return s.push(nil)
		},
		"get_headers": func(L *lua.LState) int { return s.pushHeaders(s.view.headers) },
		"get_query":   func(L *lua.LState) int { return s.push(queryMap(firstArgs(s.view.rawQuery, maxPDKArgs))) },
		"get_query_arg": func(L *lua.LState) int {
			// kong.request.get_query_arg: the first value of a repeated
			// argument.
			v := queryMap(s.view.rawQuery)[L.CheckString(1)]
			if list, ok := v.([]any); ok {
				v = list[0]
			}
			return s.push(v)
		},
		"get_uri_captures": func(L *lua.LState) int { return s.push(s.view.uriCaptures()) },
	}
}

func (s *luaState) responseFuncs() map[string]lua.LGFunction {
	return map[string]lua.LGFunction{
		"get_status": func(L *lua.LState) int { return s.push(s.view.status) },
		"get_header": func(L *lua.LState) int {
			if v, ok := header(s.view.respHeaders, L.CheckString(1)); ok {
				return s.push(v)
			}
			return s.push(nil)
		},
		"get_headers": func(L *lua.LState) int { return s.pushHeaders(s.view.respHeaders) },
		"get_source":  func(L *lua.LState) int { return s.push(s.view.source) },
	}
}

func (s *luaState) clientFuncs() map[string]lua.LGFunction {
	ip := func(L *lua.LState) int { return s.push(s.view.clientIP) }
	return map[string]lua.LGFunction{
		"get_ip":           ip,
		"get_forwarded_ip": ip, // the proxy trusts no forwarding addresses
		"get_consumer": func(L *lua.LState) int {
			c := s.view.consumer
			if c == nil {
				return s.push(nil)
			}
			m := map[string]any{"id": c.ID}
			if c.Username != "" {
				m["username"] = c.Username
			}
			if c.CustomID != "" {
				m["custom_id"] = c.CustomID
			}
			return s.push(m)
		},
		"get_credential": func(L *lua.LState) int {
			c := s.view.credential
			if c == nil {
				return s.push(nil)
			}
			return s.push(map[string]any{"id": c.ID, "consumer_id": c.ConsumerID})
		},
	}
}

// kongLogLevels are kong.log's functions (kong/pdk/log.lua's _LEVELS) and
// the level each writes at: nginx's notice is info here, and crit, alert
// and emerg are errors.
var kongLogLevels = map[string]zerolog.Level{
	"debug": zerolog.DebugLevel, "info": zerolog.InfoLevel, "notice": zerolog.InfoLevel, "warn": zerolog.WarnLevel,
	"err": zerolog.ErrorLevel, "crit": zerolog.ErrorLevel, "alert": zerolog.ErrorLevel, "emerg": zerolog.ErrorLevel,
}

// logFuncs is kong.log: serialize, and a function per level that writes
// its arguments, each turned to text and joined without a separator as
// Kong's do, to the node's log with the plugin and field running.
func (s *luaState) logFuncs() map[string]lua.LGFunction {
	fns := map[string]lua.LGFunction{"serialize": s.serialize}
	for name, level := range kongLogLevels {
		fns[name] = func(L *lua.LState) int {
			var msg strings.Builder
			for i := 1; i <= L.GetTop(); i++ {
				msg.WriteString(L.ToStringMeta(L.Get(i)).String())
			}
			s.env.logger().WithLevel(level).Str("plugin", s.plugin).Str("field", s.field).
				Str("kong_log", name).Msg(msg.String())
			return 0
		}
	}
	return fns
}

// serialize is kong.log.serialize: the log record, as the logging
// plugin builds it, with the custom fields set so far.
func (s *luaState) serialize(L *lua.LState) int {
	if s.record != nil {
		return s.push(s.record)
	}
	var m any
	if s.view.record != nil {
		d := json.NewDecoder(strings.NewReader(string(s.view.record)))
		d.UseNumber()
		_ = d.Decode(&m)
	}
	return s.push(m)
}

// ngxTable is the few ngx functions such code reads: now, time, and var
// for the request's variables.
func (s *luaState) ngxTable() *lua.LTable {
	L := s.L
	t := L.SetFuncs(L.NewTable(), map[string]lua.LGFunction{
		"now": func(L *lua.LState) int {
			return s.push(float64(time.Now().UnixMilli()) / 1000)
		},
		"time": func(L *lua.LState) int { return s.push(time.Now().Unix()) },
	})
	vars, meta := L.NewTable(), L.NewTable()
	meta.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		v, ok := s.view.ngxVar(L.CheckString(2))
		if !ok {
			return s.push(nil)
		}
		return s.push(v)
	}))
	L.SetMetatable(vars, meta)
	t.RawSetString("var", vars)
	return t
}

// ngxVar is an nginx variable of the request, for ngx.var.
func (v *luaView) ngxVar(name string) (any, bool) {
	switch name {
	case "request_uri":
		return v.requestURI, true
	case "uri":
		return v.path, true
	case "host":
		return v.host, true
	case "scheme":
		return v.scheme, true
	case "request_method":
		return v.method, true
	case "remote_addr", "binary_remote_addr":
		return v.clientIP, true
	case "server_port":
		return strconv.Itoa(v.port), true
	case "args", "query_string":
		if v.rawQuery == "" {
			return nil, false
		}
		return v.rawQuery, true
	case "status":
		return strconv.Itoa(v.status), true
	}
	if h, ok := strings.CutPrefix(name, "http_"); ok {
		return header(v.headers, h)
	}
	if a, ok := strings.CutPrefix(name, "arg_"); ok {
		for pair := range strings.SplitSeq(v.rawQuery, "&") {
			k, val, _ := strings.Cut(pair, "=")
			if strings.EqualFold(k, a) {
				return val, true
			}
		}
	}
	return nil, false
}

// uriCaptures is get_uri_captures' {unnamed, named}.
func (v *luaView) uriCaptures() map[string]any {
	unnamed, named := []any{}, map[string]any{}
	next := 1
	for _, c := range v.captures {
		if c.index == next {
			unnamed = append(unnamed, c.value)
			next++
		}
		if c.name != "" {
			named[c.name] = c.value
		}
	}
	return map[string]any{"unnamed": unnamed, "named": named}
}

// routerCaptures is the router's uri_captures table request-transformer's
// templates read: [0] the whole match, the groups by number and by name.
func (s *luaState) routerCaptures() *lua.LTable {
	t := s.L.NewTable()
	if len(s.view.captures) == 0 {
		return t
	}
	t.RawSetInt(0, lua.LString(s.view.path))
	for _, c := range s.view.captures {
		t.RawSetInt(c.index, lua.LString(c.value))
		if c.name != "" {
			t.RawSetString(c.name, lua.LString(c.value))
		}
	}
	return t
}

func (s *luaState) push(v any) int {
	s.L.Push(toLua(s.L, v))
	return 1
}

func (s *luaState) pushHeaders(list []luaHeader) int {
	t := toLua(s.L, headerMap(list)).(*lua.LTable)
	s.L.SetMetatable(t, s.headMeta)
	s.L.Push(t)
	return 1
}

// toLua turns a Go value of the shapes encoding/json decodes to (and
// ints) into a Lua value; lists become sequences.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case json.Number:
		f, _ := v.Float64()
		return lua.LNumber(f)
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, x := range v {
			t.Append(toLua(L, x))
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(v))
		for k, x := range v {
			t.RawSetString(k, toLua(L, x))
		}
		return t
	}
	return lua.LString(fmt.Sprint(v))
}

// errBadValue is kong.log.set_serialize_value's refusal (kong/pdk/log.lua
// is_valid_value).
var errBadValue = errors.New("value must be nil, a number, string, boolean or a non-self-referencial table containing numbers, string and booleans")

// fromLua turns a chunk's result into a JSON value: a sequence becomes a
// list, another table an object (number keys as text, as cjson writes
// them), an empty table an empty object.
func fromLua(v lua.LValue, seen map[*lua.LTable]bool) (any, error) {
	switch v := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LBool:
		return bool(v), nil
	case lua.LNumber:
		if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, nil
		}
		return nil, errors.New("cannot serialise a NaN or infinite number") // JSON has none
	case lua.LString:
		return string(v), nil
	case *lua.LTable:
		if seen[v] || len(seen) > 1000 {
			return nil, errBadValue
		}
		seen[v] = true
		defer delete(seen, v)
		return tableFromLua(v, seen)
	}
	return nil, errBadValue
}

func tableFromLua(t *lua.LTable, seen map[*lua.LTable]bool) (any, error) {
	n, keys := t.MaxN(), 0
	t.ForEach(func(lua.LValue, lua.LValue) { keys++ })
	if n > 0 && n == keys {
		list := make([]any, n)
		for i := range n {
			x, err := fromLua(t.RawGetInt(i+1), seen)
			if err != nil {
				return nil, err
			}
			list[i] = x
		}
		return list, nil
	}
	obj := map[string]any{}
	var err error
	t.ForEach(func(k, x lua.LValue) {
		if err != nil {
			return
		}
		var key string
		switch k := k.(type) {
		case lua.LString:
			key = string(k)
		case lua.LNumber:
			key = k.String()
		default:
			err = errBadValue
			return
		}
		obj[key], err = fromLua(x, seen)
	})
	return obj, err
}

// sortedKeys are m's keys in order, so chunks run in the same order on
// every request.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
