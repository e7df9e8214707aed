package plugins

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/grapevine-gw/grapevine/internal/luasandbox"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// request-transformer's templates (kong/plugins/request-transformer/
// access.lua param_value): every value with a $(…) expression is
// compiled once with the plugin and rendered per request, before the
// transformations, against the client's request as received: headers,
// query_params, uri_captures (the router's: [0] the whole match, the
// groups by number and name) and shared. Kong renders with no time
// limit; here a value that runs past luaRunLimit, or fails, answers 500
// as Kong's Lua error does, and is logged (sampled).

type transformTemplates struct {
	env    *Env
	plugin string
	uri    *luasandbox.Template
	broken error // a value that does not compile
	failed sampled
}

func isPlain(t *luasandbox.Template) bool { _, plain := t.Plain(); return plain }

// compileTemplates compiles the values holding expressions; the
// transformer keeps no templates when none does. A value that does not
// compile (the schema checks body and query values, as Kong's does, but
// not headers or the uri) makes every request fail as in Kong, where the
// template is compiled on first use.
func (rt *requestTransformer) compileTemplates(env *Env, plugin string) {
	tt := &transformTemplates{env: env, plugin: plugin}
	found := false
	for _, o := range []*transformOps{&rt.headers, &rt.query, &rt.body} {
		for _, list := range o.lists() {
			for i := range list {
				t, err := luasandbox.CompileTemplate(list[i].value)
				if err != nil {
					tt.broken, found = cmp.Or(tt.broken, fmt.Errorf("template %s: %w", list[i].value, err)), true
					continue
				}
				if !isPlain(t) {
					list[i].tmpl, found = t, true
				}
			}
		}
	}
	if rt.setURI {
		t, err := luasandbox.CompileTemplate(rt.uri)
		switch {
		case err != nil:
			tt.broken, found = cmp.Or(tt.broken, fmt.Errorf("template %s: %w", rt.uri, err)), true
		case !isPlain(t):
			tt.uri, found = t, true
		}
	}
	if found {
		rt.templates = tt
	}
}

func (o *transformOps) lists() [][]pair {
	return [][]pair{o.remove, o.rename, o.replace, o.add, o.append}
}

// templateStates are the Env's Lua states for rendering templates,
// taken for one request at a time.
type templateStates struct{ pool sync.Pool }

func (e *Env) templateState() *luaState {
	if s, ok := e.templates.pool.Get().(*luaState); ok {
		return s
	}
	return newLuaState(e)
}

// render is rt with its templates rendered for x.
func (tt *transformTemplates) render(rt *requestTransformer, x pdk.Exchange) (*requestTransformer, error) {
	if tt.broken != nil {
		tt.report(tt.broken)
		return nil, tt.broken
	}
	s := tt.env.templateState()
	s.newRequest(viewOf(x, false))
	env := s.templateEnv()
	out := *rt
	out.templates = nil
	var err error
	renderList := func(list []pair) []pair {
		if err != nil || !slices.ContainsFunc(list, func(p pair) bool { return p.tmpl != nil }) {
			return list
		}
		list = slices.Clone(list)
		for i := range list {
			if list[i].tmpl != nil && err == nil {
				list[i].value, err = s.Render(list[i].tmpl, env, luaRunLimit)
			}
		}
		return list
	}
	for _, o := range []*transformOps{&out.headers, &out.query, &out.body} {
		o.remove, o.rename, o.replace = renderList(o.remove), renderList(o.rename), renderList(o.replace)
		o.add, o.append = renderList(o.add), renderList(o.append)
	}
	if tt.uri != nil && err == nil {
		out.uri, err = s.Render(tt.uri, env, luaRunLimit)
	}
	s.view = nil
	if err != nil {
		tt.report(err)
		if errors.Is(err, luasandbox.ErrTimeout) {
			s.Close() // a run cut off may leave the state in any shape
		} else {
			tt.env.templates.pool.Put(s)
		}
		return nil, err
	}
	tt.env.templates.pool.Put(s)
	return &out, nil
}

func (tt *transformTemplates) report(err error) {
	if ok, dropped := tt.failed.allow(time.Now()); ok {
		tt.env.logger().Error().Str("plugin", tt.plugin).Err(err).Int64("held_back", dropped).
			Msg("[request-transformer] failed to render the template")
	}
}
