package proxy

import (
	"fmt"
	"regexp"
	"strings"
)

// Kong's paths and header values are PCRE (traditional router) or Rust regex
// (ATC). Go's RE2 syntax shares most of both; the few spellings it lacks but
// can express are rewritten here, and the constructs RE2 cannot run at all
// (look-around, back-references, possessive and atomic groups) fail to
// compile and are reported.
var pcreRewrites = strings.NewReplacer(
	`\Z`, `\z`, // end of subject (PCRE also allows a final newline; paths have none)
	`\h`, `[\t ]`, // horizontal white space
)

// compilePathRegex compiles a route's "~" path. Kong anchors it at the start
// by prefixing "^" unless it already begins with one (transform.lua).
func compilePathRegex(expr string) (*regexp.Regexp, error) {
	expr = pcreRewrites.Replace(expr)
	if !strings.HasPrefix(expr, "^") {
		expr = "^" + expr
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("invalid regex %q: %w", expr, err)
	}
	return re, nil
}

// compileHeaderRegex compiles a "~*" header value. Kong lower-cases both the
// pattern and the header value, so the match is case-insensitive and, like
// ATC's, unanchored.
func compileHeaderRegex(expr string) (*regexp.Regexp, error) {
	re, err := regexp.Compile("(?i)" + pcreRewrites.Replace(expr))
	if err != nil {
		return nil, fmt.Errorf("invalid header regex %q: %w", expr, err)
	}
	return re, nil
}
