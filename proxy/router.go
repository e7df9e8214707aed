package proxy

import (
	"bytes"
	"cmp"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/grapevine-gw/grapevine/entity"
)

// The router follows Kong 3.9's traditional_compatible flavour: every route
// becomes one matcher per path group (kong/router/transform.lua
// split_routes_and_services_by_path), each with a 64-bit priority; matchers
// are tried best first and the first that matches wins.

const (
	plainHostOnlyBit = uint64(1) << 60
	regexURLBit      = uint64(1) << 51
	maxHeaderCount   = 255
)

// splitRouteNamespace is the UUID v5 namespace Kong names split routes with;
// the derived ids decide ties, so they must be Kong's.
var splitRouteNamespace = uuid.MustParse("7f145bf9-0dce-4f91-98eb-debbce4b9f6b")

type hostKind uint8

const (
	hostExact  hostKind = iota
	hostSuffix          // "*.a.com": any name ending ".a.com"
	hostPrefix          // "a.*": any name starting "a."
)

type hostMatcher struct {
	kind  hostKind
	value []byte // lower case; for wildcards the fixed part with its dot
	port  int    // 0: any local port
}

type headerMatcher struct {
	name    string
	values  [][]byte // lower case
	regexes []*regexp.Regexp
}

// matcher is one route's condition for one group of its paths.
type matcher struct {
	priority uint64
	id       string // Kong's tie-breaker: greater wins
	route    *route
	methods  [][]byte
	hosts    []hostMatcher
	snis     []hostMatcher // checked on TLS requests only
	headers  []headerMatcher
	prefixes [][]byte
	regexes  []*regexp.Regexp
}

// compareMatchers orders best first: higher priority, then greater id.
func compareMatchers(a, b *matcher) int {
	if c := cmp.Compare(b.priority, a.priority); c != 0 {
		return c
	}
	return strings.Compare(b.id, a.id)
}

// compileRoute turns a route into its matchers, one per path group.
func compileRoute(e *entity.Route, r *route) ([]*matcher, error) {
	base, err := compileConditions(e, r)
	if err != nil {
		return nil, err
	}
	groups := groupPaths(e.Paths)
	if len(groups) <= 1 {
		m := *base
		if err := m.setPaths(e.Paths); err != nil {
			return nil, err
		}
		m.priority = routePriority(e, e.Paths)
		return []*matcher{&m}, nil
	}
	out := make([]*matcher, 0, len(groups))
	for i, g := range groups {
		m := *base
		if err := m.setPaths(g); err != nil {
			return nil, err
		}
		m.priority = routePriority(e, g)
		m.id = uuid.NewSHA1(splitRouteNamespace, []byte(e.ID+"#"+strconv.Itoa(i+1))).String()
		out = append(out, &m)
	}
	return out, nil
}

// groupPaths groups paths as Kong does: all regexes together, prefixes by
// length, groups in order of first appearance.
func groupPaths(paths []string) [][]string {
	var groups [][]string
	index := map[int]int{}
	for _, p := range paths {
		k := len(p)
		if isRegexPath(p) {
			k = 0
		}
		if i, ok := index[k]; ok {
			groups[i] = append(groups[i], p)
			continue
		}
		index[k] = len(groups)
		groups = append(groups, []string{p})
	}
	return groups
}

func isRegexPath(p string) bool { return strings.HasPrefix(p, "~") }

// compileConditions compiles everything but the paths.
func compileConditions(e *entity.Route, r *route) (*matcher, error) {
	m := &matcher{id: e.ID, route: r}
	for _, method := range e.Methods {
		m.methods = append(m.methods, []byte(strings.ToUpper(method)))
	}
	for _, h := range e.Hosts {
		hm, err := compileHost(h)
		if err != nil {
			return nil, err
		}
		m.hosts = append(m.hosts, hm)
	}
	for _, name := range e.SNIs {
		m.snis = append(m.snis, compileSNI(name))
	}
	names := make([]string, 0, len(e.Headers))
	for name := range e.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		hm, err := compileHeader(name, e.Headers[name])
		if err != nil {
			return nil, err
		}
		m.headers = append(m.headers, hm)
	}
	return m, nil
}

// compileHost parses "name", "*.suffix", "prefix.*", each with an optional
// ":port".
func compileHost(h string) (hostMatcher, error) {
	h = strings.ToLower(h)
	hm := hostMatcher{}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		port, err := strconv.Atoi(h[i+1:])
		if err != nil || port < 0 || port > 65535 {
			return hm, fmt.Errorf("invalid host %q", h)
		}
		hm.port, h = port, h[:i]
	}
	switch {
	case strings.HasPrefix(h, "*"):
		hm.kind, h = hostSuffix, h[1:]
	case strings.HasSuffix(h, "*"):
		hm.kind, h = hostPrefix, h[:len(h)-1]
	}
	hm.value = []byte(h)
	return hm, nil
}

// compileSNI is transform.lua's sni_op_transform and sni_val_transform:
// "*.x" matches names ending ".x", "x.*" names starting "x.", anything
// else the name itself less a trailing dot.
func compileSNI(name string) hostMatcher {
	name = strings.ToLower(name)
	switch {
	case strings.HasPrefix(name, "*"):
		return hostMatcher{kind: hostSuffix, value: []byte(strings.TrimSuffix(name[1:], "."))}
	case strings.HasSuffix(name, "*"):
		return hostMatcher{kind: hostPrefix, value: []byte(name[:len(name)-1])}
	}
	if len(name) > 1 {
		name = strings.TrimSuffix(name, ".")
	}
	return hostMatcher{value: []byte(name)}
}

func compileHeader(name string, values []string) (headerMatcher, error) {
	hm := headerMatcher{name: name}
	for _, v := range values {
		if !strings.HasPrefix(v, "~*") {
			hm.values = append(hm.values, []byte(strings.ToLower(v)))
			continue
		}
		re, err := compileHeaderRegex(strings.ToLower(v[2:]))
		if err != nil {
			return hm, err
		}
		hm.regexes = append(hm.regexes, re)
	}
	return hm, nil
}

func (m *matcher) setPaths(paths []string) error {
	m.prefixes, m.regexes = nil, nil
	for _, p := range paths {
		if !isRegexPath(p) {
			m.prefixes = append(m.prefixes, []byte(p))
			continue
		}
		re, err := compilePathRegex(p[1:])
		if err != nil {
			return err
		}
		m.regexes = append(m.regexes, re)
	}
	return nil
}

// routePriority is transform.lua get_priority for a route restricted to
// paths (one group).
func routePriority(e *entity.Route, paths []string) uint64 {
	weight := uint64(0)
	for _, set := range []bool{
		len(e.Sources) > 0, len(e.Destinations) > 0, len(e.Methods) > 0,
		len(e.Hosts) > 0, len(e.Headers) > 0, len(e.SNIs) > 0, len(paths) > 0,
	} {
		if set {
			weight++
		}
	}
	p := weight << 61
	if plainHostsOnly(e.Hosts) {
		p |= plainHostOnlyBit
	}
	p |= uint64(min(len(e.Headers), maxHeaderCount)) << 52
	if len(paths) > 0 && isRegexPath(paths[0]) {
		// Kong shifts regex_priority into bits 19-50 as an unsigned number.
		// Offsetting by 2^31 keeps negative priorities below positive ones
		// within the same 32 bits; the order among regex routes is Kong's.
		p |= regexURLBit | uint64(uint32(int64(e.RegexPriority)+1<<31))<<19
	} else if len(paths) > 0 {
		p |= uint64(len(paths[0])) & 0x7FFFF
	}
	return p
}

func plainHostsOnly(hosts []string) bool {
	if len(hosts) == 0 {
		return false
	}
	for _, h := range hosts {
		if strings.IndexByte(h, '*') >= 0 {
			return false
		}
	}
	return true
}

// request is what the router looks at, already normalised: host in lower
// case without its port, path normalised.
type request struct {
	method []byte
	host   []byte
	port   int // the Host header's port, or the local port the request arrived on
	path   []byte
	header *fasthttp.RequestHeader
	tls    bool   // the request came over TLS
	sni    string // its server name, lower case; set only when the snapshot has routes with snis
}

// match returns the best matcher for req and the length of the path prefix
// it matched (-1 when the route has no paths).
func (s *Snapshot) match(req *request) (*matcher, int) {
	return s.index.match(req)
}

func (m *matcher) matches(req *request) (int, bool) {
	if len(m.methods) > 0 && !containsBytes(m.methods, req.method) {
		return -1, false
	}
	n, ok := m.matchPath(req.path)
	if !ok {
		return -1, false
	}
	if len(m.hosts) > 0 && !m.matchHost(req.host, req.port) {
		return -1, false
	}
	// Kong leaves snis out of the match for requests that are not https
	// (transform.lua: net.protocol != "https" || tls.sni ...).
	if len(m.snis) > 0 && req.tls && !matchSNI(m.snis, req.sni) {
		return -1, false
	}
	for i := range m.headers {
		if !m.headers[i].matches(req.header) {
			return -1, false
		}
	}
	return n, true
}

func (m *matcher) matchPath(path []byte) (int, bool) {
	if len(m.prefixes) == 0 && len(m.regexes) == 0 {
		return -1, true
	}
	for _, p := range m.prefixes {
		if bytes.HasPrefix(path, p) {
			return len(p), true
		}
	}
	for _, re := range m.regexes {
		if loc := re.FindIndex(path); loc != nil {
			return loc[1], true
		}
	}
	return -1, false
}

func (m *matcher) matchHost(host []byte, port int) bool {
	for i := range m.hosts {
		h := &m.hosts[i]
		if h.port != 0 && h.port != port {
			continue
		}
		switch h.kind {
		case hostExact:
			if bytes.Equal(host, h.value) {
				return true
			}
		case hostSuffix:
			if bytes.HasSuffix(host, h.value) {
				return true
			}
		case hostPrefix:
			if bytes.HasPrefix(host, h.value) {
				return true
			}
		}
	}
	return false
}

func matchSNI(snis []hostMatcher, sni string) bool {
	for i := range snis {
		h := &snis[i]
		switch h.kind {
		case hostExact:
			if sni == string(h.value) {
				return true
			}
		case hostSuffix:
			if strings.HasSuffix(sni, string(h.value)) {
				return true
			}
		case hostPrefix:
			if strings.HasPrefix(sni, string(h.value)) {
				return true
			}
		}
	}
	return false
}

// matches reports whether any value of the named request header equals
// (case-insensitively) or matches one of the route's values.
func (h *headerMatcher) matches(header *fasthttp.RequestHeader) bool {
	if header == nil {
		return false
	}
	for _, v := range header.PeekAll(h.name) {
		for _, want := range h.values {
			if bytes.EqualFold(v, want) {
				return true
			}
		}
		for _, re := range h.regexes {
			if re.Match(v) {
				return true
			}
		}
	}
	return false
}

func containsBytes(set [][]byte, v []byte) bool {
	for _, s := range set {
		if bytes.Equal(s, v) {
			return true
		}
	}
	return false
}
