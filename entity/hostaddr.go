package entity

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Address kinds, as Kong's hostname_type tells them apart (by exclusion,
// not validation: "some::thing" is an ipv6 that fails to parse).
const (
	addrIPv4 = "ipv4"
	addrIPv6 = "ipv6"
	addrName = "name"
)

// hostAddr is a parsed host[:port] in Kong's normal form
// (kong/tools/ip.lua normalize_ip): an ipv4 without leading zeros, an
// ipv6 fully expanded in lower case without brackets, a name as given.
type hostAddr struct {
	kind    string
	host    string
	port    int
	hasPort bool // a port was given (Kong keeps port 0 as given)
}

// addrType is Kong's hostname_type.
func addrType(s string) string {
	if strings.Count(s, ":") > 1 {
		return addrIPv6
	}
	rest := strings.ReplaceAll(s, ":", "")
	if rest != "" && strings.Trim(rest, "0123456789.") == "" {
		return addrIPv4
	}
	return addrName
}

// parseHostAddr is Kong's normalize_ip: it accepts ipv4[:port],
// ipv6, [ipv6][:port] and name[:port]; the error is Kong's message.
func parseHostAddr(s string) (hostAddr, string) {
	switch k := addrType(s); k {
	case addrIPv4:
		return parseIPv4Port(s)
	case addrIPv6:
		return parseIPv6Port(s)
	default:
		return parseNamePort(s)
	}
}

var ipv4PortRe = regexp.MustCompile(`^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?::(\d+))?$`)

func parseIPv4Port(s string) (hostAddr, string) {
	m := ipv4PortRe.FindStringSubmatch(s)
	if m == nil || strings.Contains(s, ":") != (m[5] != "") {
		return hostAddr{}, "invalid ipv4 address: " + s
	}
	octets := make([]any, 4)
	for i := range 4 {
		n, _ := strconv.Atoi(m[i+1])
		if n > 255 {
			return hostAddr{}, "invalid ipv4 address: " + s
		}
		octets[i] = n
	}
	a := hostAddr{kind: addrIPv4, host: fmt.Sprintf("%d.%d.%d.%d", octets...)}
	if m[5] != "" {
		var msg string
		if a.port, msg = parsePortDigits(m[5]); msg != "" {
			return hostAddr{}, msg
		}
		a.hasPort = true
	}
	return a, ""
}

// parsePortDigits reads a port already known to be digits.
func parsePortDigits(d string) (int, string) {
	n, err := strconv.Atoi(d)
	if err != nil || n > 65535 {
		return 0, "invalid port number"
	}
	return n, ""
}

var ipv6GroupsRe = regexp.MustCompile(`^[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){7}$`)

func parseIPv6Port(s string) (hostAddr, string) {
	check, port, hasPort := s, 0, false
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return hostAddr{}, "invalid ipv6 address: " + s
		}
		check = s[1:end]
		if rest := s[end+1:]; rest != "" {
			d, ok := strings.CutPrefix(rest, ":")
			if !ok || strings.Trim(d, "0123456789") != "" {
				return hostAddr{}, "invalid ipv6 address"
			}
			var msg string
			if port, msg = parsePortDigits(d); msg != "" {
				return hostAddr{}, msg
			}
			hasPort = true
		}
	}
	full, ok := expandIPv6(check)
	if !ok {
		return hostAddr{}, "invalid ipv6 address: " + s
	}
	return hostAddr{kind: addrIPv6, host: full, port: port, hasPort: hasPort}, ""
}

// expandIPv6 writes an ipv6 address as eight four-digit lower-case groups.
func expandIPv6(s string) (string, bool) {
	if strings.HasPrefix(s, ":") {
		s = "0" + s
	}
	if strings.HasSuffix(s, ":") {
		s += "0"
	}
	if strings.Contains(s, "::") {
		n := strings.Count(s, ":")
		if n > 8 {
			return "", false
		}
		s = strings.Replace(s, "::", ":"+strings.Repeat("0:", 8-n), 1)
	}
	if !ipv6GroupsRe.MatchString(s) {
		return "", false
	}
	groups := strings.Split(s, ":")
	for i, g := range groups {
		groups[i] = strings.Repeat("0", 4-len(g)) + strings.ToLower(g)
	}
	return strings.Join(groups, ":"), true
}

var hostnameCharsRe = regexp.MustCompile(`^[0-9A-Za-z._-]+$`)

// parseNamePort is Kong's check_hostname: letters, digits, '-', '.',
// '_'; no segment ends in '-', no empty segment but a final one (an FQDN
// may end in a dot).
func parseNamePort(s string) (hostAddr, string) {
	a := hostAddr{kind: addrName, host: s}
	if i := strings.LastIndexByte(s, ':'); i >= 0 && i < len(s)-1 && strings.Trim(s[i+1:], "0123456789") == "" {
		var msg string
		if a.port, msg = parsePortDigits(s[i+1:]); msg != "" {
			return hostAddr{}, msg
		}
		a.host, a.hasPort = s[:i], true
	}
	if !hostnameCharsRe.MatchString(a.host) {
		return hostAddr{}, "invalid hostname: " + s
	}
	segs := strings.Split(a.host, ".")
	for i, seg := range segs {
		if strings.HasSuffix(seg, "-") || seg == "" && i != len(segs)-1 {
			return hostAddr{}, "invalid hostname: " + s
		}
	}
	return a, ""
}

// withPort is Kong's format_host(addr, port): the host (an ipv6 in
// brackets) and its own port, or port when it has none.
func (a hostAddr) withPort(port int) string {
	host := a.host
	if a.kind == addrIPv6 {
		host = "[" + host + "]"
	}
	if a.hasPort {
		port = a.port
	}
	return host + ":" + strconv.Itoa(port)
}
