package proxy

// appendUpstreamPath appends the upstream path for a request to dst, as
// kong/router/utils.lua get_upstream_uri_v0 computes it (the only path
// handling traditional_compatible uses). reqPath is the normalised request
// path; matched is the length of the path prefix the route matched, or -1
// when the route has no paths.
func appendUpstreamPath(dst, base, reqPath []byte, stripPath bool, matched int) []byte {
	postfix := requestPostfix(reqPath, stripPath, matched)
	if base[len(base)-1] == '/' {
		return appendSlashBase(dst, base, reqPath, postfix, stripPath)
	}
	return appendPlainBase(dst, base, reqPath, postfix, stripPath)
}

// requestPostfix is the part of the path after the stripped prefix, or the
// path without its leading slash when nothing is stripped, sanitised as
// utils.lua sanitize_uri_postfix does.
func requestPostfix(reqPath []byte, stripPath bool, matched int) []byte {
	var postfix []byte
	if stripPath && matched >= 0 {
		postfix = reqPath[min(matched, len(reqPath)):]
	} else if len(reqPath) > 0 {
		postfix = reqPath[1:]
	}
	switch {
	case string(postfix) == "." || string(postfix) == "..":
		return nil
	case len(postfix) >= 2 && string(postfix[:2]) == "./":
		return postfix[2:]
	case len(postfix) >= 3 && string(postfix[:3]) == "../":
		return postfix[3:]
	}
	return postfix
}

// appendSlashBase handles a service path that ends with '/'.
func appendSlashBase(dst, base, reqPath, postfix []byte, stripPath bool) []byte {
	if !stripPath {
		if len(reqPath) == 0 {
			return append(dst, base...)
		}
		return append(append(dst, base...), reqPath[1:]...)
	}
	switch {
	case len(postfix) == 0 && len(base) == 1:
		return append(dst, '/')
	case len(postfix) == 0 && endsWithSlash(reqPath):
		return append(dst, base...)
	case len(postfix) == 0:
		return append(dst, base[:len(base)-1]...)
	case postfix[0] == '/':
		return append(append(dst, base[:len(base)-1]...), postfix...)
	default:
		return append(append(dst, base...), postfix...)
	}
}

// appendPlainBase handles a service path that does not end with '/'.
func appendPlainBase(dst, base, reqPath, postfix []byte, stripPath bool) []byte {
	if !stripPath {
		if string(reqPath) == "/" {
			return append(dst, base...)
		}
		return append(append(dst, base...), reqPath...)
	}
	switch {
	case len(postfix) == 0 && len(reqPath) > 1 && endsWithSlash(reqPath):
		return append(append(dst, base...), '/')
	case len(postfix) == 0:
		return append(dst, base...)
	case postfix[0] == '/':
		return append(append(dst, base...), postfix...)
	default:
		return append(append(append(dst, base...), '/'), postfix...)
	}
}

func endsWithSlash(p []byte) bool { return len(p) > 0 && p[len(p)-1] == '/' }
