package entity

// Path normalisation as Kong applies it to a request before routing and to
// a route's prefix paths before accepting them (normalize in
// kong/tools/uri.lua, with merge_slashes): percent-decode every escape but
// those of reserved characters, whose hex digits are upper-cased, merge
// runs of slashes, then remove dot segments (RFC 3986 §5.2.4). The proxy
// calls the byte form on every request, so it allocates nothing once dst
// has grown.

// NormalizePath returns the normalised form of a path.
func NormalizePath(p string) string {
	return string(AppendNormalizedPath(nil, []byte(p)))
}

// AppendNormalizedPath returns the normalised form of p. When p is already normal
// (the common case) it is returned as is; otherwise the result is built in
// dst's storage, so the hot path allocates nothing once dst has grown.
func AppendNormalizedPath(dst, p []byte) []byte {
	if !PathNeedsNormalizing(p) {
		return p
	}
	dst = decodeUnreserved(dst[:0], p)
	if len(dst) == 0 || dst[0] != '/' {
		return dst
	}
	return removeDotSegments(dst)
}

// PathNeedsNormalizing reports whether p has an escape, an empty segment or a
// dot segment.
func PathNeedsNormalizing(p []byte) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%':
			return true
		case '/':
			if i+1 < len(p) && (p[i+1] == '/' || isDotSegmentAt(p, i+1)) {
				return true
			}
		}
	}
	return false
}

// isDotSegmentAt reports whether p[i:] starts with "." or ".." followed by
// the end or a slash.
func isDotSegmentAt(p []byte, i int) bool {
	if p[i] != '.' {
		return false
	}
	j := i + 1
	if j < len(p) && p[j] == '.' {
		j++
	}
	return j == len(p) || p[j] == '/'
}

// decodeUnreserved appends p to dst, decoding escapes of all but reserved
// characters (so "%C3%A9" becomes "é" and "%20" a space, as in Kong) and
// upper-casing the hex digits of the escapes it keeps.
func decodeUnreserved(dst, p []byte) []byte {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' || i+2 >= len(p) || !isHex(rune(p[i+1])) || !isHex(rune(p[i+2])) {
			dst = append(dst, c)
			continue
		}
		v := unhex(p[i+1])<<4 | unhex(p[i+2])
		if !isReserved(v) {
			dst = append(dst, v)
		} else {
			dst = append(dst, '%', upperHex(p[i+1]), upperHex(p[i+2]))
		}
		i += 2
	}
	return dst
}

// removeDotSegments merges slashes and resolves "." and ".." in place. p
// must start with '/'.
func removeDotSegments(p []byte) []byte {
	out := p[:0]
	rest := p[1:]
	for {
		seg, tail, more := cutSegment(rest)
		switch string(seg) {
		case "", ".":
		case "..":
			out = popSegment(out)
		default:
			// out never overtakes the segment being read: out only shrinks
			// or copies bytes that sit at or after its own end.
			out = append(out, '/')
			out = append(out, seg...)
		}
		if !more {
			if len(seg) == 0 || string(seg) == "." || string(seg) == ".." {
				out = append(out, '/')
			}
			break
		}
		rest = tail
	}
	if len(out) == 0 {
		out = append(out, '/')
	}
	return out
}

// cutSegment splits p at its first slash.
func cutSegment(p []byte) (seg, rest []byte, more bool) {
	for i, c := range p {
		if c == '/' {
			return p[:i], p[i+1:], true
		}
	}
	return p, nil, false
}

// popSegment removes the last "/segment" from out.
func popSegment(out []byte) []byte {
	for i := len(out) - 1; i >= 0; i-- {
		if out[i] == '/' {
			return out[:i]
		}
	}
	return out[:0]
}

// isReserved is Kong's RESERVED_CHARS: escapes of these keep their
// meaning and are never decoded.
// isReserved is Kong's RESERVED_CHARS: escapes of these keep their
// meaning and are never decoded.
func isReserved(c byte) bool {
	return reservedChars[c]
}

var reservedChars = func() (set [256]bool) {
	for _, c := range []byte("!*'();:@&=+$,/?%#[]") {
		set[c] = true
	}
	return set
}()

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}
