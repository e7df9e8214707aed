package entity

import (
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/", "/"},
		{"/a/b", "/a/b"},
		{"/a//b", "/a/b"},
		{"//", "/"},
		{"/a/./b", "/a/b"},
		{"/a/../b", "/b"},
		{"/a/b/..", "/a/"},
		{"/a/b/.", "/a/b/"},
		{"/..", "/"},
		{"/../a", "/a"},
		{"/a/", "/a/"},
		{"/%7euser", "/~user"},
		{"/%41%2f", "/A%2F"},
		{"/a%2e%2e/b", "/a../b"},
		{"/a/%2e%2e/b", "/b"},
		{"/bad%zz", "/bad%zz"},
		{"/.well-known", "/.well-known"},
		// Escapes of characters that are not reserved are decoded, as Kong's
		// normalize does (kong/tools/uri.lua chars_to_decode).
		{"/caf%C3%A9", "/caf\xc3\xa9"},
		{"/sp%20ace", "/sp ace"},
		{"/q%22uote%7c", "/q\"uote|"},
		{"/keep%3f%23%25", "/keep%3F%23%25"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := string(AppendNormalizedPath(nil, []byte(tt.in))); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzNormalizePath checks what routing relies on: the result starts with
// a slash when the input does, has no dot segments and no empty segment,
// and normalising it again changes nothing.
func FuzzNormalizePath(f *testing.F) {
	for _, seed := range []string{"/", "/a//b/../c", "/caf%C3%A9", "/%2e%2e/x", "/a/%2F/b", "/sp%20ace/./", "/%", "/%zz%4"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if len(in) == 0 || in[0] != '/' {
			return
		}
		out := AppendNormalizedPath(nil, []byte(in))
		if len(out) == 0 || out[0] != '/' {
			t.Fatalf("normalize(%q) = %q, want a leading slash", in, out)
		}
		if PathNeedsNormalizing(out) && !strings.Contains(string(out), "%") {
			t.Fatalf("normalize(%q) = %q still has dot or empty segments", in, out)
		}
		if again := AppendNormalizedPath(nil, out); !strings.Contains(string(out), "%") && string(again) != string(out) {
			t.Fatalf("normalize is not idempotent on %q: %q then %q", in, out, again)
		}
	})
}

// Route paths in prefix form must be normalised already, as Kong's
// validate_path_with_regexes (kong/db/schema/typedefs.lua) demands; raw
// UTF-8 and spaces are accepted since only its "percent" check counts.
func TestCheckRouterPathNormalized(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/café", ""},
		{"/sp ace", ""},
		{"/a%2Fb", ""},
		{"/caf%C3%A9", "non-normalized path, consider use '/café' instead"},
		{"/sp%20ace", "non-normalized path, consider use '/sp ace' instead"},
		{"/a%2fb", "non-normalized path, consider use '/a%2Fb' instead"},
		{"/a/../b", "non-normalized path, consider use '/b' instead"},
		{"/bad%zz", "invalid url-encoded value: '%zz'"},
		{"~/caf%C3%A9$", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := checkRouterPath(tt.path); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
