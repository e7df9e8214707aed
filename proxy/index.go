package proxy

import (
	"bytes"
	"hash/maphash"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
)

// The route index finds, for a request, the few matchers that can match it
// instead of walking them all, as Kong's traditional router indexes routes
// by host and by path (kong/router/traditional.lua, categorize_route and
// the plain-host and prefix indexes). A matcher is filed under each of its
// hosts (exact names by name, "*.a.com" by ".a.com", "a.*" by "a.", and
// no host in one catch-all) and, within a host, in a radix tree under each
// of its path prefixes (a regex under the literal text it must begin with).
// A request looks up its host's buckets, walks each tree along its path,
// and keeps the best matcher that matches among those it met. Every
// matcher that can match a request is met, so the result is the linear
// router's: the best matching matcher in compareMatchers order.
//
// The index is persistent: an update copies only the nodes on the way to
// what changed, so a snapshot with one route changed shares all the rest
// with its predecessor and building it costs O(change). Nodes stamped with
// the current edit token belong to the Builder and are changed in place,
// so a full build does not copy either; Builder.Snapshot takes a new token,
// which freezes everything the published snapshot holds.

// edit marks the index nodes a Builder may still change in place. It has a
// field so that distinct tokens have distinct addresses.
type edit struct{ _ int }

// nShards is how many pieces a host map is cut into: an update copies one
// piece (about 1/256 of the hosts) instead of the whole map.
const nShards = 256

var shardSeed = maphash.MakeSeed()

func shardOf(key []byte) int { return int(maphash.Bytes(shardSeed, key) % nShards) }

// routeIndex is the root of the index; see the comment above.
type routeIndex struct {
	edit    *edit
	exact   [nShards]*hostShard // by host name, lower case, without port
	suffix  [nShards]*hostShard // "*.a.com" by ".a.com"
	prefix  [nShards]*hostShard // "a.*" by "a."
	anyHost *trieNode           // matchers without hosts
	oddHost *trieNode           // wildcards not at a dot ("*", "*a.com"): always tried
}

type hostShard struct {
	edit *edit
	m    map[string]*trieNode
}

// trieNode is a radix tree node: the bytes of label lead into it from its
// parent, and here are the matchers filed under the whole path to it, best
// first. The root files matchers without paths and regexes without a
// literal start: they are tried for every path.
type trieNode struct {
	edit  *edit
	label []byte
	here  []*matcher
	kids  []*trieNode // ordered by label[0]
}

// mutable returns x itself if e owns it, else a copy that e owns.
func (x *routeIndex) mutable(e *edit) *routeIndex {
	if x == nil {
		return &routeIndex{edit: e}
	}
	if x.edit == e {
		return x
	}
	c := *x
	c.edit = e
	return &c
}

// update files m (add) or takes it out (!add) under every host and path key
// it has. x must be owned by e.
func (x *routeIndex) update(e *edit, m *matcher, add bool) {
	paths := m.pathKeys()
	if len(m.hosts) == 0 {
		x.anyHost = x.anyHost.updateAll(e, paths, m, add)
		return
	}
	for i := range m.hosts {
		h := &m.hosts[i]
		if !hasHost(m.hosts[:i], h) {
			x.updateHost(e, h, paths, m, add)
		}
	}
}

// hasHost reports whether an earlier host of the same matcher has the same
// index key (a.com and a.com:8443), so a matcher is filed once per key.
func hasHost(earlier []hostMatcher, h *hostMatcher) bool {
	for i := range earlier {
		if earlier[i].kind == h.kind && bytes.Equal(earlier[i].value, h.value) {
			return true
		}
	}
	return false
}

func (x *routeIndex) updateHost(e *edit, h *hostMatcher, paths [][]byte, m *matcher, add bool) {
	var shards *[nShards]*hostShard
	switch {
	case h.kind == hostExact:
		shards = &x.exact
	case h.kind == hostSuffix && len(h.value) > 0 && h.value[0] == '.':
		shards = &x.suffix
	case h.kind == hostPrefix && len(h.value) > 0 && h.value[len(h.value)-1] == '.':
		shards = &x.prefix
	default:
		x.oddHost = x.oddHost.updateAll(e, paths, m, add)
		return
	}
	i := shardOf(h.value)
	s := shards[i].mutable(e)
	key := string(h.value)
	if n := s.m[key].updateAll(e, paths, m, add); n != nil {
		s.m[key] = n
	} else {
		delete(s.m, key)
	}
	shards[i] = s
}

func (s *hostShard) mutable(e *edit) *hostShard {
	if s == nil {
		return &hostShard{edit: e, m: map[string]*trieNode{}}
	}
	if s.edit == e {
		return s
	}
	m := make(map[string]*trieNode, len(s.m)+1)
	for k, v := range s.m {
		m[k] = v
	}
	return &hostShard{edit: e, m: m}
}

func (s *hostShard) get(key []byte) *trieNode {
	if s == nil {
		return nil
	}
	return s.m[string(key)]
}

// pathKeys are the keys m is filed under in a path tree: its prefixes, the
// literal start of each regex, or "" (the root) when it has no paths.
func (m *matcher) pathKeys() [][]byte {
	if len(m.prefixes) == 0 && len(m.regexes) == 0 {
		return [][]byte{nil}
	}
	keys := make([][]byte, 0, len(m.prefixes)+len(m.regexes))
	keys = append(keys, m.prefixes...)
	for _, re := range m.regexes {
		keys = append(keys, regexLiteralStart(re))
	}
	return keys
}

// regexLiteralStart is the text every path a path regex matches starts
// with: the literal run after a leading begin-of-text anchor. It is empty
// when the regex is not anchored that way (say it is multi-line, or an
// alternation) or begins with no case-sensitive literal: those regexes
// are filed at the root and tried for every path.
func regexLiteralStart(re *regexp.Regexp) []byte {
	parsed, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return nil
	}
	parsed = parsed.Simplify()
	if parsed.Op != syntax.OpConcat || len(parsed.Sub) < 2 || parsed.Sub[0].Op != syntax.OpBeginText {
		return nil
	}
	lit := parsed.Sub[1]
	if lit.Op != syntax.OpLiteral || lit.Flags&syntax.FoldCase != 0 {
		return nil
	}
	var b strings.Builder
	for _, r := range lit.Rune {
		b.WriteRune(r)
	}
	return []byte(b.String())
}

// updateAll files m under every key in n's tree (n may be nil) and returns
// the new root, nil when the tree is left empty.
func (n *trieNode) updateAll(e *edit, keys [][]byte, m *matcher, add bool) *trieNode {
	for i, k := range keys {
		if !slices.ContainsFunc(keys[:i], func(o []byte) bool { return bytes.Equal(o, k) }) {
			n = n.update(e, k, m, add)
		}
	}
	return n
}

// update files m under key below n (key excludes n's own label) and returns
// n or its replacement, nil when n is left empty.
func (n *trieNode) update(e *edit, key []byte, m *matcher, add bool) *trieNode {
	if n == nil && !add {
		return nil
	}
	n = n.mutable(e)
	if len(key) == 0 {
		if add {
			n.here = insertMatcher(n.here, m)
		} else {
			n.here = removeMatcher(n.here, m)
		}
		return n.orNil()
	}
	i, found := n.kidIndex(key[0])
	if !found {
		if add {
			leaf := &trieNode{edit: e, label: key, here: []*matcher{m}}
			n.kids = slices.Insert(n.kids, i, leaf)
		}
		return n.orNil()
	}
	kid := n.kids[i]
	l := commonPrefix(kid.label, key)
	if l < len(kid.label) {
		if !add {
			return n // m is not filed under key
		}
		// Split kid's edge: a new node for the shared part, kid below it.
		label := kid.label
		tail := kid.mutable(e)
		tail.label = label[l:]
		kid = &trieNode{edit: e, label: label[:l], kids: []*trieNode{tail}}
	}
	if kid = kid.update(e, key[l:], m, add); kid != nil {
		n.kids[i] = kid
	} else {
		n.kids = slices.Delete(n.kids, i, i+1)
	}
	return n.orNil()
}

func (n *trieNode) mutable(e *edit) *trieNode {
	if n == nil {
		return &trieNode{edit: e}
	}
	if n.edit == e {
		return n
	}
	return &trieNode{edit: e, label: n.label, here: slices.Clone(n.here), kids: slices.Clone(n.kids)}
}

func (n *trieNode) orNil() *trieNode {
	if len(n.here) == 0 && len(n.kids) == 0 {
		return nil
	}
	return n
}

// kidIndex finds the child whose label starts with c, or where it would go.
func (n *trieNode) kidIndex(c byte) (int, bool) {
	lo, hi := 0, len(n.kids)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if n.kids[mid].label[0] < c {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < len(n.kids) && n.kids[lo].label[0] == c
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// insertMatcher adds m to a best-first list it is not in yet.
func insertMatcher(list []*matcher, m *matcher) []*matcher {
	i, found := slices.BinarySearchFunc(list, m, compareMatchers)
	if found {
		return list
	}
	return slices.Insert(list, i, m)
}

// removeMatcher takes m out of a best-first list.
func removeMatcher(list []*matcher, m *matcher) []*matcher {
	i, found := slices.BinarySearchFunc(list, m, compareMatchers)
	if !found || list[i] != m {
		return list
	}
	return slices.Delete(list, i, i+1)
}

// bestMatch is the best matching matcher met so far.
type bestMatch struct {
	m *matcher
	n int
}

// scan tries a best-first list: it stops at the first matcher that
// matches, or that is no better than the best already found.
func (b *bestMatch) scan(list []*matcher, req *request) {
	for _, m := range list {
		if b.m != nil && compareMatchers(m, b.m) >= 0 {
			return
		}
		if n, ok := m.matches(req); ok {
			b.m, b.n = m, n
			return
		}
	}
}

// walk scans the lists of every node of n's tree whose path is a prefix of
// the request's path.
func (b *bestMatch) walk(n *trieNode, req *request) {
	if n == nil {
		return
	}
	b.scan(n.here, req)
	path := req.path
	for len(path) > 0 {
		i, found := n.kidIndex(path[0])
		if !found || !bytes.HasPrefix(path, n.kids[i].label) {
			return
		}
		n = n.kids[i]
		path = path[len(n.label):]
		b.scan(n.here, req)
	}
}

// match returns the best matcher for req and the length of the path
// prefix it matched (-1 when the route has no paths).
func (x *routeIndex) match(req *request) (*matcher, int) {
	if x == nil {
		return nil, -1
	}
	var b bestMatch
	host := req.host
	b.walk(x.exact[shardOf(host)].get(host), req)
	for i, c := range host {
		if c != '.' {
			continue
		}
		suffix, prefix := host[i:], host[:i+1]
		b.walk(x.suffix[shardOf(suffix)].get(suffix), req)
		b.walk(x.prefix[shardOf(prefix)].get(prefix), req)
	}
	b.walk(x.anyHost, req)
	b.walk(x.oddHost, req)
	if b.m == nil {
		return nil, -1
	}
	return b.m, b.n
}
