package entity

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kong's typedefs (kong/db/schema/typedefs.lua) as Go fields and validators.

var protocolNames = []any{"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp"}

func uuidField(name string) Field {
	return Field{Name: name, Type: TypeString, UUID: true, Auto: true}
}

func timestampField(name string) Field {
	return Field{Name: name, Type: TypeInteger, Timestamp: true, Auto: true}
}

func utf8NameField(name string) Field {
	return Field{Name: name, Type: TypeString, Unique: true, Check: checkUTF8Name, MaxBytes: MaxIndexedBytes}
}

func tagsField() Field {
	return Field{Name: "tags", Type: TypeSet, Elements: &Field{Type: TypeString, Required: true, Check: checkTag, MaxBytes: MaxIndexedBytes}}
}

func portField(name string, def any, required bool) Field {
	return Field{Name: name, Type: TypeInteger, Default: def, Required: required, Between: []int64{0, 65535}}
}

func checkUTF8Name(v any) string {
	s := v.(string)
	if msg := checkUTF8(s); msg != "" {
		return msg
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 128 && c <= 244 || isAlnum(c) || strings.IndexByte(".-_~", c) >= 0 {
			continue
		}
		return fmt.Sprintf("invalid value '%s': the only accepted ascii characters are alphanumerics or ., -, _, and ~", s)
	}
	if s == "" {
		return fmt.Sprintf("invalid value '%s': the only accepted ascii characters are alphanumerics or ., -, _, and ~", s)
	}
	return ""
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// ValidTag reports whether t is a valid tag: printable ASCII except ',' and
// '/', or valid utf-8 sequences.
func ValidTag(t string) bool {
	if t == "" || !utf8.ValidString(t) {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		ok := c == ' ' || c >= 33 && c <= 43 || c == 45 || c == 46 || c >= 48 && c <= 126 || c >= 128 && c <= 244
		if !ok {
			return false
		}
	}
	return true
}

func checkTag(v any) string {
	s := v.(string)
	if msg := checkUTF8(s); msg != "" {
		return msg
	}
	if ValidTag(s) {
		return ""
	}
	return fmt.Sprintf("invalid tag '%s': expected printable ascii (except `,` and `/`) or valid utf-8 sequences", s)
}

// TagLookupError is the answer to GET /tags/{tag} for a value that cannot
// be a tag: code 10 "invalid unique tag", as Kong's page_by_tag
// (kong/db/dao/tags.lua) validates the tag first. Nil for a valid tag.
func TagLookupError(tag string) *Error {
	if msg := checkTag(tag); msg != "" {
		return InvalidUnique("tag", msg)
	}
	return nil
}

// hostPort is the result of Kong's utils.normalize_ip.
type hostPort struct {
	host   string
	port   int
	isName bool
}

// normalizeIP mirrors kong.tools.ip normalize_ip: an IPv4, IPv6 or hostname
// with an optional port; errors are "invalid port number" or
// "invalid hostname: x" (or "invalid ipv4/ipv6 address").
func normalizeIP(addr string) (hostPort, string) {
	if ip := net.ParseIP(addr); ip != nil {
		return hostPort{host: addr}, ""
	}
	if strings.HasPrefix(addr, "[") {
		return normalizeBracketIPv6(addr)
	}
	name, port := addr, 0
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		p, err := strconv.Atoi(addr[i+1:])
		if err != nil || p < 0 {
			return hostPort{}, "invalid hostname: " + addr
		}
		if p > 65535 {
			return hostPort{}, "invalid port number"
		}
		name, port = addr[:i], p
	}
	if net.ParseIP(name) != nil && !strings.Contains(name, ":") {
		return hostPort{host: name, port: port}, ""
	}
	if !validHostname(name) {
		return hostPort{}, "invalid hostname: " + addr
	}
	return hostPort{host: name, port: port, isName: true}, ""
}

func normalizeBracketIPv6(addr string) (hostPort, string) {
	end := strings.IndexByte(addr, ']')
	if end < 0 || net.ParseIP(addr[1:end]) == nil {
		return hostPort{}, "invalid ipv6 address: " + addr
	}
	rest := addr[end+1:]
	if rest == "" {
		return hostPort{host: addr}, ""
	}
	p, err := strconv.Atoi(strings.TrimPrefix(rest, ":"))
	if !strings.HasPrefix(rest, ":") || err != nil || p < 0 || p > 65535 {
		return hostPort{}, "invalid port number"
	}
	return hostPort{host: addr[:end+1], port: p}, ""
}

func validHostname(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isAlnum(c) && c != '-' && c != '.' && c != '_' {
			return false
		}
	}
	for _, seg := range strings.Split(name, ".") {
		if seg == "" || strings.HasSuffix(seg, "-") {
			return false
		}
	}
	return true
}

// checkHost is typedefs.host: no port allowed.
func checkHost(v any) string {
	s := v.(string)
	hp, err := normalizeIP(s)
	if err != "" && err != "invalid port number" {
		return "invalid value: " + s
	}
	if err == "invalid port number" || hp.port != 0 || strings.HasSuffix(s, ":0") {
		return "must not have a port"
	}
	return ""
}

// checkWildcardHost is the routes hosts element validator.
func checkWildcardHost(v any) string {
	s := v.(string)
	if strings.Count(s, "*") > 1 {
		return "invalid wildcard: must have at most one wildcard"
	}
	if strings.Contains(s, "*") && !strings.HasPrefix(s, "*.") && !strings.HasSuffix(s, ".*") {
		return "invalid wildcard: must be placed at leftmost or rightmost label"
	}
	mock := strings.Replace(s, "*", "wildcard", 1)
	if _, err := normalizeIP(mock); err != "" {
		return strings.Replace(err, mock, s, 1)
	}
	return ""
}

// checkSNI is typedefs.sni / wildcard_host without a port.
func checkSNI(v any) string {
	s := v.(string)
	mock := strings.Replace(s, "*", "wildcard", 1)
	if strings.Count(s, "*") > 1 || strings.Contains(s, "*") && !strings.HasPrefix(s, "*.") && !strings.HasSuffix(s, ".*") {
		return "invalid value: " + s
	}
	hp, err := normalizeIP(mock)
	if err != "" && err != "invalid port number" {
		return "invalid value: " + s
	}
	if err != "" || hp.port != 0 {
		return "must not have a port"
	}
	if !hp.isName {
		return "must not be an IP"
	}
	return ""
}

// checkPath is typedefs.path (services): starts with /, no empty segments,
// RFC 3986 characters, valid %-encoding.
func checkPath(v any) string {
	s := v.(string)
	if strings.Contains(s, "//") {
		return "must not have empty segments"
	}
	if msg := checkRFC3986(s); msg != "" {
		return msg
	}
	return checkPercent(s)
}

const rfc3986Chars = "-._~/%:@!$&'()*+,;="

func checkRFC3986(s string) string {
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && strings.IndexByte(rfc3986Chars, s[i]) < 0 {
			return "invalid path: '" + s + "' (characters outside of the reserved list of RFC 3986 found)"
		}
	}
	return ""
}

func checkPercent(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+2 < len(s) && isHex(rune(s[i+1])) && isHex(rune(s[i+2])) {
			i += 2
			continue
		}
		end := i + 3
		if end > len(s) {
			end = len(s)
		}
		return "invalid url-encoded value: '" + s[i:end] + "'"
	}
	return ""
}

// checkRouterPath is typedefs.router_path: a prefix path ("/…", normalised)
// or a regex path ("~/…", compiled as the proxy compiles it).
func checkRouterPath(v any) string {
	s := v.(string)
	if !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "~/") {
		return "should start with: / (fixed path) or ~/ (regex path)"
	}
	if strings.Contains(s, "//") {
		return "must not have empty segments"
	}
	if msg := checkPercent(s); msg != "" {
		return msg
	}
	if re, ok := strings.CutPrefix(s, "~"); ok {
		return checkRegexPath(re)
	}
	if n := NormalizePath(s); n != s {
		return "non-normalized path, consider use '" + n + "' instead"
	}
	return ""
}

// CompileRegexPath compiles a route's regex path (without the leading "~")
// anchored at the start, exactly as the proxy does.
func CompileRegexPath(re string) (*regexp.Regexp, error) {
	return regexp.Compile("^" + re)
}

func checkRegexPath(re string) string {
	if _, err := CompileRegexPath(re); err != nil {
		return fmt.Sprintf("invalid regex: '%s' (PCRE returned: %s)", re, err)
	}
	return ""
}

var methodRe = regexp.MustCompile(`^[A-Z]+$`)

func checkMethod(v any) string {
	if s := v.(string); !methodRe.MatchString(s) {
		return "invalid value: " + s
	}
	return ""
}

var headerNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func checkHeaderName(v any) string {
	s := v.(string)
	if !headerNameRe.MatchString(s) {
		return fmt.Sprintf("bad header name '%s', allowed characters are A-Z, a-z, 0-9, '_', and '-'", s)
	}
	if strings.EqualFold(s, "host") {
		return "cannot contain 'host' header, which must be specified in the 'hosts' attribute"
	}
	return ""
}

func checkIPOrCIDR(v any) string {
	s := v.(string)
	if net.ParseIP(s) != nil {
		return ""
	}
	if _, _, err := net.ParseCIDR(s); err == nil {
		return ""
	}
	return "invalid ip or cidr range: '" + s + "'"
}

// MaxIndexedBytes bounds the strings PostgreSQL indexes (names, tags): a
// btree or GIN entry holds about 2 700 bytes, and a longer value fails the
// write. Kong sets no length on these fields (typedefs.lua), so the limit
// is Grapevine's, kept below the index's with room to spare.
const MaxIndexedBytes = 2048

// checkUTF8 is Kong's validate_utf8_string (typedefs.lua): the 1-based
// byte position of the first invalid sequence.
func checkUTF8(s string) string {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return "invalid utf-8 character sequence detected at position " + strconv.Itoa(i+1)
		}
		i += size
	}
	return ""
}

// checkStorable refuses what PostgreSQL's text and jsonb cannot hold as
// given: invalid utf-8 (Go's JSON encoder would replace it, changing the
// data) and NUL bytes. Kong has no rule for it; its database answers 500.
func checkStorable(s string) string {
	if msg := checkUTF8(s); msg != "" {
		return msg
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return "invalid NUL byte detected at position " + strconv.Itoa(i+1)
	}
	return ""
}

// checkMaxBytes is the MaxBytes rule of a field.
func checkMaxBytes(s string, limit int) string {
	if limit > 0 && len(s) > limit {
		return fmt.Sprintf("length must be at most %d bytes", limit)
	}
	return ""
}
