// Package listen owns kong.conf's listener syntax, as proxy_listen and
// admin_listen take it: a comma-separated list of "host:port" each
// followed by nginx's flags ("0.0.0.0:8000 reuseport backlog=16384,
// 0.0.0.0:8443 ssl http2"), or "off". The node's configuration checks it,
// the proxy binds the addresses it names, and the Admin API reports it as
// Kong does. It parses text and opens nothing.
package listen

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Listener is one entry of a listen list.
type Listener struct {
	Entry string // the entry as written, flags included
	Addr  string // host:port
	Host  string
	Port  int
	// Flags are the words after the address: ssl, http2, reuseport,
	// backlog=N, …
	Flags []string
}

// Has reports whether the listener carries flag (a word such as "ssl",
// or the name before "=" of one such as "backlog").
func (l Listener) Has(flag string) bool {
	for _, f := range l.Flags {
		if name, _, _ := strings.Cut(f, "="); name == flag {
			return true
		}
	}
	return false
}

// Parse reads a listen list; "off" and "" give none.
func Parse(value string) ([]Listener, error) {
	value = strings.TrimSpace(value)
	if value == "off" || value == "" {
		return nil, nil
	}
	var out []Listener
	for _, entry := range strings.Split(value, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		l, err := parseEntry(entry)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func parseEntry(entry string) (Listener, error) {
	words := strings.Fields(entry)
	host, portText, err := net.SplitHostPort(words[0])
	if err != nil {
		return Listener{}, fmt.Errorf("listener %q: invalid address, expected host:port", entry)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return Listener{}, fmt.Errorf("listener %q: invalid port %q", entry, portText)
	}
	return Listener{Entry: entry, Addr: words[0], Host: host, Port: port, Flags: words[1:]}, nil
}

// Addrs are the listeners' host:port addresses.
func Addrs(ls []Listener) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Addr
	}
	return out
}

// Check refuses a listener flag Kong does not know (with Kong's usage
// message, kong/conf_loader/listeners.lua) or that Grapevine cannot
// honour. ssl and http2 are served; reuseport, backlog=N, deferred and
// bind are nginx socket tuning and change nothing; proxy_protocol,
// ipv6only and so_keepalive are refused. http2 without ssl is Kong's too:
// its template makes it the server block's "http2 on", with which nginx
// (1.25.1+) takes HTTP/2 with prior knowledge beside HTTP/1.1 on a plain
// listener.
func (l Listener) Check() error {
	for _, f := range l.Flags {
		name, value, hasValue := strings.Cut(f, "=")
		switch {
		case !hasValue && (name == "ssl" || name == "http2" || name == "reuseport" || name == "deferred" || name == "bind"):
		case hasValue && name == "backlog" && isDigits(value):
		case name == "proxy_protocol" && !hasValue, name == "ipv6only" && (value == "on" || value == "off"),
			name == "so_keepalive" && hasValue:
			return fmt.Errorf("listener %q: flag %q is not supported by grapevine", l.Entry, f)
		default:
			return fmt.Errorf("listener %q: unknown flag %q; must be of form: [off] | <ip>:<port> [ssl] [http2] [reuseport] [backlog=%%d+] [deferred] [bind], [... next entry ...]", l.Entry, f)
		}
	}
	return nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// AddrOf is the host:port of one entry of a listen list ("0.0.0.0:8443
// ssl" gives "0.0.0.0:8443"), the entry itself when it does not parse.
func AddrOf(entry string) string {
	if words := strings.Fields(entry); len(words) > 0 {
		return words[0]
	}
	return entry
}

// Join makes a listen value of entries again.
func Join(entries []string) string { return strings.Join(entries, ", ") }
