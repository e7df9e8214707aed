package proxy

import "testing"

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
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := string(normalizePath(nil, []byte(tt.in))); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
