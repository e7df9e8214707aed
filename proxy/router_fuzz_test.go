package proxy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
)

// FuzzRouteMatch gives the router any route path the Admin API accepts
// (a prefix, or a regex after "~", kong/db/schema/typedefs.lua
// router_path) and any request path. What must hold: an accepted path
// always builds a snapshot without warnings; matching never panics; a
// prefix route matches exactly the normalised paths it prefixes, a regex
// route exactly those its pattern matches from the start (Kong anchors
// regex paths), and the matched length is the prefix's or the match's
// end.
func FuzzRouteMatch(f *testing.F) {
	for _, seed := range [][2]string{
		{"/foo", "/foo/bar"},
		{"/foo/", "/foo"},
		{"/caf%C3%A9", "/caf%c3%a9/x"},
		{`~/users/(?<id>\d+)$`, "/users/12"},
		{`~/(a+)+$`, "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"},
		{"~/a|/b", "/b/c"},
		{"~/", "/%2e%2e/x"},
		{"/", "/a/../../b"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, routePath, reqPath string) {
		routePath, ok := acceptedRoutePath(routePath)
		if !ok || !strings.HasPrefix(reqPath, "/") {
			return
		}
		route := testRoute(idA, "", paths(routePath))
		got, n := matchRoute(t, []entity.Route{route}, testReq{path: reqPath})
		normalized := string(entity.AppendNormalizedPath(nil, []byte(reqPath)))

		wantMatch, wantLen := false, -1
		if re, ok := strings.CutPrefix(routePath, "~"); ok {
			compiled, err := entity.CompileRegexPath(re)
			if err != nil {
				t.Fatalf("regex %q was accepted but does not compile: %v", re, err)
			}
			if loc := compiled.FindStringIndex(normalized); loc != nil {
				wantMatch, wantLen = true, loc[1]
			}
		} else if strings.HasPrefix(normalized, routePath) {
			wantMatch, wantLen = true, len(routePath)
		}
		if wantMatch != (got == idA) {
			t.Fatalf("route path %q, request path %q (normalised %q): matched %v, want %v", routePath, reqPath, normalized, got == idA, wantMatch)
		}
		if wantMatch && n != wantLen {
			t.Fatalf("route path %q, request path %q: matched length %d, want %d", routePath, reqPath, n, wantLen)
		}
	})
}

// acceptedRoutePath sends path as a route's only path through the Admin
// API's decoding and route schema, and returns the path stored, if taken
// (JSON has no invalid UTF-8: such bytes arrive as U+FFFD).
func acceptedRoutePath(path string) (string, bool) {
	body, err := json.Marshal(map[string]any{"paths": []string{path}})
	if err != nil {
		return "", false
	}
	doc, err := entity.DecodeBody("application/json", body, entity.Routes)
	if err != nil {
		return "", false
	}
	out, verr := entity.Routes.Validate(doc)
	if verr != nil {
		return "", false
	}
	stored, ok := out["paths"].([]any)
	if !ok || len(stored) != 1 {
		return "", false
	}
	p, ok := stored[0].(string)
	return p, ok
}
