package proxy

// The upstream path is escaped as Kong escapes the upstream URI (escape in
// kong/tools/uri.lua); the request path was normalised before routing
// (entity.AppendNormalizedPath).

// pathSafeChars are left as they are in an upstream path; every other byte
// is escaped (Kong's ESCAPE_PATTERN in kong/tools/uri.lua).
var pathSafeChars = func() (set [256]bool) {
	for _, c := range []byte("!#$&'()*+,/:;=?@[]-_.~%" +
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") {
		set[c] = true
	}
	return set
}()

// needsEscaping reports whether p has a byte appendEscapedPath escapes.
func needsEscaping(p []byte) bool {
	for _, c := range p {
		if !pathSafeChars[c] {
			return true
		}
	}
	return false
}

// appendEscapedPath appends p with every unsafe byte as %XX, as Kong
// escapes the upstream URI: a quote is %22, a bar %7C, "é" %C3%A9.
func appendEscapedPath(dst, p []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range p {
		if pathSafeChars[c] {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', hex[c>>4], hex[c&15])
		}
	}
	return dst
}
