package declarative

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParse10k parses the document of scripts/bench-import: 10 000
// services, each with a route, a key-auth plugin and a consumer with a key.
func BenchmarkParse10k(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("_format_version: \"3.0\"\nservices:\n")
	for i := range 10000 {
		fmt.Fprintf(&sb, "- name: s%d\n  url: http://u.test\n  routes:\n  - name: r%d\n    paths: [/s%d]\n  plugins:\n  - name: key-auth\n", i, i, i)
	}
	sb.WriteString("consumers:\n")
	for i := range 10000 {
		fmt.Fprintf(&sb, "- username: c%d\n  keyauth_credentials:\n  - key: k%d\n", i, i)
	}
	doc := []byte(sb.String())
	b.ResetTimer()
	for b.Loop() {
		if _, err := Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
}
