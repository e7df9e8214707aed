// Package luasandbox runs the untrusted Lua code Kong's plugins accept
// (custom_fields_by_lua, request-transformer's $(…) templates) the way
// Kong's sandbox does with untrusted_lua = sandbox, its default
// (kong/tools/sandbox.lua, kong/tools/kong-lua-sandbox.lua): text chunks
// only, a fresh environment per run holding only the safe part of the
// standard library and what the caller adds, and require refused.
//
// Unlike Kong on LuaJIT, which cannot bound a chunk, every run here has a
// time limit: a chunk that loops forever is cut off with an error. It owns
// no plugin logic and touches neither the proxy nor the store.
package luasandbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// Compile compiles code once, for any number of States to run. The
// error is Kong's message for code that does not load (sandbox.lua
// validate_safe): "Error parsing function: " and where and why.
func Compile(code string) (*lua.FunctionProto, error) {
	if current().Mode == "off" {
		return nil, errors.New("Error parsing function: " + ErrDisabled.Error())
	}
	proto, err := compile(code, chunkID(code))
	if err != nil {
		return nil, errors.New("Error parsing function: " + err.Error())
	}
	return proto, nil
}

// compile compiles code; the error is in Lua's own shape: the chunk's
// name (id), the line, the reason and the token.
func compile(code, id string) (*lua.FunctionProto, error) {
	chunk, err := parse.Parse(strings.NewReader(code), "=chunk")
	if err != nil {
		var pe *parse.Error
		if !errors.As(err, &pe) {
			return nil, err
		}
		line, token := pe.Pos.Line, pe.Token
		if line == parse.EOF {
			line, token = strings.Count(code, "\n")+1, "<eof>"
		}
		return nil, fmt.Errorf("%s:%d: %s near '%s'", id, line, pe.Message, token)
	}
	proto, err := lua.Compile(chunk, "=chunk")
	if err != nil {
		var ce *lua.CompileError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%s:%d: %s", id, ce.Line, ce.Message)
		}
		return nil, err
	}
	return proto, nil
}

// chunkID is how Lua names a chunk loaded from a string without a name:
// its first line, cut short with "..." (luaO_chunkid).
func chunkID(code string) string {
	const max = 45
	first, _, more := strings.Cut(code, "\n")
	if len(first) > max {
		first, more = first[:max], true
	}
	if more {
		first += "..."
	}
	return `[string "` + first + `"]`
}

// Settings are kong.conf's untrusted_lua keys.
type Settings struct {
	// Mode is untrusted_lua: "sandbox" (the default, also for ""), "off"
	// (no untrusted Lua at all) or "on" (every global, unrestricted).
	Mode string
	// Requires is untrusted_lua_sandbox_requires: the modules the
	// sandbox's require may load (only the interpreter's own libraries
	// exist here).
	Requires []string
	// Environment is untrusted_lua_sandbox_environment: globals (dotted
	// paths) added to the sandbox.
	Environment []string
}

var settings atomic.Pointer[Settings]

// Configure sets the process's untrusted_lua settings, as Kong's are its
// node's; code compiled and States made afterwards follow them.
func Configure(s Settings) { settings.Store(&s) }

func current() *Settings {
	if s := settings.Load(); s != nil {
		return s
	}
	return &Settings{}
}

// ErrDisabled is Kong's refusal of untrusted Lua with untrusted_lua = off.
var ErrDisabled = errors.New("loading of untrusted Lua code disabled because 'untrusted_lua' config option is set to 'off'")

// Unrestricted reports whether untrusted_lua is on: code may reach
// every global.
func Unrestricted() bool { return current().Mode == "on" }

// safeGlobals are the functions kong-lua-sandbox's BASE_ENV lets code
// use; the libraries among them are read-only copies.
var safeGlobals = []string{"_VERSION", "assert", "error", "ipairs", "next", "pairs", "pcall",
	"select", "tonumber", "tostring", "type", "unpack", "xpcall"}

var safeLibs = map[string][]string{
	"coroutine": {"create", "resume", "running", "status", "wrap", "yield"},
	"math": {"abs", "acos", "asin", "atan", "atan2", "ceil", "cos", "cosh", "deg", "exp", "fmod",
		"floor", "frexp", "huge", "ldexp", "log", "log10", "max", "min", "modf", "pi", "pow", "rad",
		"random", "sin", "sinh", "sqrt", "tan", "tanh"},
	"os": {"clock", "date", "difftime", "time"},
	"string": {"byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "rep",
		"reverse", "sub", "upper"},
	"table": {"concat", "insert", "maxn", "remove", "sort"},
}

// State is one Lua interpreter with the sandbox's base environment.
// Not safe for concurrent use: keep one per goroutine, or pool them.
type State struct {
	L *lua.LState
	// Base is what every run's environment falls back to: the safe
	// library, plus whatever the owner adds (kong, ngx, …).
	Base *lua.LTable

	envMeta *lua.LTable
	fns     map[*lua.FunctionProto]*lua.LFunction
}

// New returns a State with the sandbox's base environment, or, with
// untrusted_lua = on, every global of the interpreter.
func New() *State {
	L := lua.NewState(lua.Options{CallStackSize: 200, RegistrySize: 1024, RegistryMaxSize: 64 * 1024})
	boundRep(L)
	s := &State{L: L, Base: L.NewTable(), envMeta: L.NewTable(), fns: map[*lua.FunctionProto]*lua.LFunction{}}
	set := current()
	if set.Mode == "on" {
		s.Base = L.G.Global
		s.envMeta.RawSetString("__index", s.Base)
		return s
	}
	for _, name := range safeGlobals {
		s.Base.RawSetString(name, L.GetGlobal(name))
	}
	for lib, names := range safeLibs {
		src, _ := L.GetGlobal(lib).(*lua.LTable)
		fns := L.NewTable()
		for _, name := range names {
			if src != nil {
				fns.RawSetString(name, src.RawGetString(name))
			}
		}
		s.Base.RawSetString(lib, s.ReadOnly(lib, fns))
	}
	s.Base.RawSetString("require", L.NewFunction(func(L *lua.LState) int {
		name := L.CheckString(1)
		if !slices.Contains(set.Requires, name) {
			L.RaiseError("require '%s' not allowed within sandbox", name)
		}
		// Only the interpreter's own libraries are there to load.
		loaded, _ := L.GetField(L.Get(lua.RegistryIndex), "_LOADED").(*lua.LTable)
		if loaded == nil || loaded.RawGetString(name) == lua.LNil {
			L.RaiseError("module '%s' not found", name)
		}
		L.Push(loaded.RawGetString(name))
		return 1
	}))
	// untrusted_lua_sandbox_environment links globals in, replacing the
	// safe library's table of the same name (sandbox.lua link).
	linked := L.NewTable()
	for _, name := range set.Environment {
		link(L, name, L.G.Global, linked)
	}
	linked.ForEach(func(k, v lua.LValue) { s.Base.RawSet(k, v) })
	s.envMeta.RawSetString("__index", s.Base)
	return s
}

// maxRepBytes bounds what string.rep may build.
const maxRepBytes = 64 << 20

// boundRep replaces string.rep (the library's, which strings' methods
// reach too) with one that refuses a result over maxRepBytes, with Lua
// 5.3's message. gopher-lua's builds the whole string in one Go call that
// the time limit cannot interrupt: string.rep("x", 1e10) asked for 10 GB
// and would take the node down from one template or log field.
func boundRep(L *lua.LState) {
	lib, ok := L.GetGlobal("string").(*lua.LTable)
	if !ok {
		return
	}
	lib.RawSetString("rep", L.NewFunction(func(L *lua.LState) int {
		str := L.CheckString(1)
		n := L.CheckInt64(2)
		if n <= 0 || str == "" {
			L.Push(lua.LString(""))
			return 1
		}
		if n > maxRepBytes/int64(len(str)) {
			L.RaiseError("resulting string too large")
		}
		L.Push(lua.LString(strings.Repeat(str, int(n))))
		return 1
	}))
}

// link copies the global at the dotted path q from o into target,
// making the tables on the way (sandbox.lua link).
func link(L *lua.LState, q string, o, target *lua.LTable) {
	head, rest, more := strings.Cut(q, ".")
	mod := o.RawGetString(head)
	if mod == lua.LNil {
		return
	}
	if !more {
		target.RawSetString(head, mod)
		return
	}
	next, ok := mod.(*lua.LTable)
	if !ok {
		return
	}
	sub, ok := target.RawGetString(head).(*lua.LTable)
	if !ok {
		sub = L.NewTable()
		target.RawSetString(head, sub)
	}
	link(L, rest, next, sub)
}

// ReadOnly is kong-lua-sandbox's protect_module: reads reach fns, writes
// are an error. Tables in Base that runs must not change (a library, the
// PDK) are made read-only, as each run shares them.
func (s *State) ReadOnly(name string, fns *lua.LTable) *lua.LTable {
	t, meta := s.L.NewTable(), s.L.NewTable()
	meta.RawSetString("__index", fns)
	meta.RawSetString("__newindex", s.L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("Can not modify %s.%s. Protected by the sandbox.", name, L.ToString(2))
		return 0
	}))
	s.L.SetMetatable(t, meta)
	return t
}

// Env is a fresh environment for one run, as Kong makes one per call:
// reads fall through to Base, globals the code sets stay in it, and _G
// is the environment itself.
func (s *State) Env() *lua.LTable {
	env := s.L.NewTable()
	env.RawSetString("_G", env)
	s.L.SetMetatable(env, s.envMeta)
	return env
}

// ErrTimeout is a run cut off at its time limit.
var ErrTimeout = errors.New("the Lua code ran past its time limit")

// Run runs proto in env and returns its first result. A run that takes
// longer than limit is stopped with ErrTimeout; a Lua error comes back
// as the error. After an error the State should be dropped: its stack
// may be left in any shape.
func (s *State) Run(proto *lua.FunctionProto, env *lua.LTable, limit time.Duration) (lua.LValue, error) {
	fn := s.fns[proto]
	if fn == nil {
		fn = s.L.NewFunctionFromProto(proto)
		s.fns[proto] = fn
	}
	fn.Env = env
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	s.L.SetContext(ctx)
	defer s.L.RemoveContext()
	top := s.L.GetTop()
	s.L.Push(fn)
	if err := s.L.PCall(0, 1, nil); err != nil {
		if ctx.Err() != nil {
			return lua.LNil, ErrTimeout
		}
		return lua.LNil, err
	}
	v := s.L.Get(-1)
	s.L.SetTop(top)
	return v, nil
}

// Close releases the interpreter.
func (s *State) Close() { s.L.Close() }
