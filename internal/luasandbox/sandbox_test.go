package luasandbox

import (
	"errors"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

func run(t *testing.T, s *State, code string) (lua.LValue, error) {
	t.Helper()
	proto, err := Compile(code)
	if err != nil {
		t.Fatalf("compile %q: %v", code, err)
	}
	return s.Run(proto, s.Env(), time.Second)
}

// TestSandboxGlobals: kong/tools/kong-lua-sandbox.lua's BASE_ENV is all
// untrusted code sees (with untrusted_lua = sandbox, kong.conf.default's
// default, and no untrusted_lua_sandbox_requires): the unsafe functions
// and libraries are nil, the safe ones work.
func TestSandboxGlobals(t *testing.T) {
	s := New()
	t.Cleanup(s.Close)
	tests := []struct{ code, want string }{
		{"return type(os.execute)", "nil"},
		{"return type(os.exit)", "nil"},
		{"return type(os.getenv)", "nil"},
		{"return type(os.remove)", "nil"},
		{"return type(io)", "nil"},
		{"return type(load)", "nil"},
		{"return type(loadstring)", "nil"},
		{"return type(dofile)", "nil"},
		{"return type(loadfile)", "nil"},
		{"return type(getfenv)", "nil"},
		{"return type(setfenv)", "nil"},
		{"return type(setmetatable)", "nil"},
		{"return type(getmetatable)", "nil"},
		{"return type(rawset)", "nil"},
		{"return type(rawget)", "nil"},
		{"return type(debug)", "nil"},
		{"return type(collectgarbage)", "nil"},
		{"return type(module)", "nil"},
		{"return type(package)", "nil"},
		{"return type(string.dump)", "nil"},
		{"return type(math.randomseed)", "nil"},
		{"return type(_G.io)", "nil"},
		{"return string.upper('a') .. table.concat({'b', 'c'}) .. math.floor(2.5)", "Abc2"},
		{"return type(os.time()) .. type(os.date('%Y')) .. type(os.clock())", "numberstringnumber"},
		{"return select('#', 1, 2) + tonumber('3')", "5"},
		{"return pcall(error, 'x')", "false"},
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			got, err := run(t, s, tc.code)
			if err != nil || got.String() != tc.want {
				t.Errorf("got %v, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestSandboxRefuses: what Kong's sandbox turns into an error.
func TestSandboxRefuses(t *testing.T) {
	s := New()
	t.Cleanup(s.Close)
	tests := []struct{ name, code, want string }{
		// kong/tools/sandbox.lua: the sandbox's require allows only
		// untrusted_lua_sandbox_requires, empty by default.
		{"require", "return require('os')", "require 'os' not allowed within sandbox"},
		// kong-lua-sandbox.lua protect_module.
		{"changing a library", "string.upper = nil", "Can not modify string.upper. Protected by the sandbox."},
		{"calling a removed function", "return os.execute('true')", "attempt to call"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, New(), tc.code)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestSandboxFreshEnvironment: Kong makes a new environment per call
// (kong-lua-sandbox.lua protect), so a global set by one run is gone in
// the next.
func TestSandboxFreshEnvironment(t *testing.T) {
	s := New()
	t.Cleanup(s.Close)
	if _, err := run(t, s, "leak = 'x'"); err != nil {
		t.Fatal(err)
	}
	if got, err := run(t, s, "return type(leak)"); err != nil || got.String() != "nil" {
		t.Errorf("got %v, %v; want nil", got, err)
	}
}

// TestSandboxTimeLimit: a chunk that never ends is cut off, with or
// without pcall around the loop (Kong on LuaJIT cannot bound it: its
// quota needs debug.sethook, kong-lua-sandbox.lua quota_supported).
func TestSandboxTimeLimit(t *testing.T) {
	for _, code := range []string{
		"while true do end",
		"pcall(function() while true do end end) while true do end",
		"local function f() return f() end return f()",
		"while true do pcall(function() while true do end end) end",
	} {
		t.Run(code, func(t *testing.T) {
			s := New()
			defer s.Close()
			proto, err := Compile(code)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, err := s.Run(proto, s.Env(), 50*time.Millisecond); done <- err }()
			select {
			case err := <-done:
				if err == nil {
					t.Error("got no error, want the run cut off")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the run was not cut off")
			}
		})
	}
	t.Run("ErrTimeout", func(t *testing.T) {
		s := New()
		defer s.Close()
		proto, _ := Compile("while true do end")
		if _, err := s.Run(proto, s.Env(), 20*time.Millisecond); !errors.Is(err, ErrTimeout) {
			t.Errorf("got %v, want %v", err, ErrTimeout)
		}
	})
}

// TestCompileErrors: code that does not load is refused with
// kong/tools/sandbox.lua's "Error parsing function: " and Lua's
// [string "…"]:line: shape; bytecode is not text and does not load
// (mode "t").
func TestCompileErrors(t *testing.T) {
	tests := []struct{ code, want string }{
		{"return 1 +", `Error parsing function: [string "return 1 +"]:1: `},
		{"x = = 1", `Error parsing function: [string "x = = 1"]:1: `},
		{"local a = 1\nreturn a +", `Error parsing function: [string "local a = 1..."]:2: `},
		{"\x1bLua\x51\x00", "Error parsing function: "},
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			_, err := Compile(tc.code)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %v, want an error starting %q", err, tc.want)
			}
		})
	}
}

// TestUntrustedLuaSettings follows kong/tools/sandbox.lua and
// kong.conf.default's untrusted_lua keys: off refuses every chunk (and
// a template's expressions) with Kong's message, on gives every global,
// sandbox_environment links globals in by dotted path (replacing the
// safe table of that name) and sandbox_requires lets require load the
// modules it names.
func TestUntrustedLuaSettings(t *testing.T) {
	t.Cleanup(func() { Configure(Settings{}) })
	t.Run("off", func(t *testing.T) {
		Configure(Settings{Mode: "off"})
		if _, err := Compile("return 1"); err == nil || err.Error() != "Error parsing function: "+ErrDisabled.Error() {
			t.Errorf("got %v, want Error parsing function: %v", err, ErrDisabled)
		}
		tmpl, err := CompileTemplate("$(1)")
		if err != nil {
			t.Fatal(err)
		}
		s := New()
		defer s.Close()
		if _, err := s.Render(tmpl, s.Env(), time.Second); !errors.Is(err, ErrDisabled) {
			t.Errorf("got %v, want %v", err, ErrDisabled)
		}
	})
	tests := []struct {
		name     string
		settings Settings
		code     string
		want     string
	}{
		{"on: every global", Settings{Mode: "on"}, "return type(io) .. type(os.execute) .. type(load)", "tablefunctionfunction"},
		{"environment links a function", Settings{Environment: []string{"os.getenv"}}, "return type(os.getenv) .. type(os.time)", "functionnil"},
		{"environment links a table", Settings{Environment: []string{"io"}}, "return type(io.open)", "function"},
		{"requires", Settings{Requires: []string{"string"}}, "return require('string').upper('a')", "A"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			Configure(tc.settings)
			s := New()
			defer s.Close()
			got, err := run(t, s, tc.code)
			if err != nil || got.String() != tc.want {
				t.Errorf("got %v, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Run("a required module that is not there", func(t *testing.T) {
		Configure(Settings{Requires: []string{"cjson"}})
		s := New()
		defer s.Close()
		if _, err := run(t, s, "return require('cjson')"); err == nil || !strings.Contains(err.Error(), "module 'cjson' not found") {
			t.Errorf("got %v, want module 'cjson' not found", err)
		}
	})
}

// TestSandboxBoundsStringRep: string.rep builds its result in one call
// the time limit cannot cut off, so a result over 64 MB is refused (Lua
// 5.3's "resulting string too large") instead of allocating it; smaller
// ones, and the method form, work as in Lua.
func TestSandboxBoundsStringRep(t *testing.T) {
	s := New()
	t.Cleanup(s.Close)
	tests := []struct{ code, want, wantErr string }{
		{`return #string.rep("ab", 3)`, "6", ""},
		{`return ("x"):rep(2) .. string.rep("y", 0)`, "xx", ""},
		{`return #string.rep("x", 1e10)`, "", "resulting string too large"},
		{`return #("xy"):rep(4e7)`, "", "resulting string too large"},
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			got, err := run(t, s, tc.code)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Errorf("got %v, %v; want %q", got, err, tc.want)
			}
		})
	}
}
