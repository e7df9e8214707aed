// Package kongheaders owns which of Kong's own headers a node sends:
// kong.conf's headers and headers_upstream, parsed once into a Set the
// proxy tests with a bit mask on each answer.
package kongheaders

import (
	"fmt"
	"strings"
)

// Set is which of Kong's own headers the proxy sends: kong.conf's
// headers and headers_upstream (kong/conf_loader/init.lua builds
// enabled_headers the same way: server_tokens stands for Server and Via,
// latency_tokens for the latency headers).
type Set uint16

// The headers a Set enables.
const (
	Server Set = 1 << iota
	Via
	ProxyLatency
	UpstreamLatency
	ResponseLatency
	AdminLatency
	UpstreamStatus
	RequestID
)

// Default is Kong's default headers: server_tokens, latency_tokens,
// x-kong-request-id.
const Default = Server | Via | ProxyLatency | UpstreamLatency | ResponseLatency |
	AdminLatency | RequestID

// headerTokens are the tokens kong.conf's headers accepts (lower case).
var headerTokens = map[string]Set{
	"server_tokens":           Server | Via,
	"latency_tokens":          ProxyLatency | UpstreamLatency | ResponseLatency | AdminLatency,
	"server":                  Server,
	"via":                     Via,
	"x-kong-proxy-latency":    ProxyLatency,
	"x-kong-upstream-latency": UpstreamLatency,
	"x-kong-response-latency": ResponseLatency,
	"x-kong-admin-latency":    AdminLatency,
	"x-kong-upstream-status":  UpstreamStatus,
	"x-kong-request-id":       RequestID,
}

// Parse reads kong.conf's headers (or, with upstream, its
// headers_upstream, which takes only x-kong-request-id); "off" sends none.
// Errors are Kong's.
func Parse(tokens []string, upstream bool) (Set, error) {
	key := "headers"
	if upstream {
		key = "headers_upstream"
	}
	var set Set
	for _, t := range tokens {
		t = strings.ToLower(strings.TrimSpace(t))
		bits, ok := headerTokens[t]
		if upstream && t != "x-kong-request-id" {
			ok = false
		}
		switch {
		case t == "off":
		case !ok:
			return 0, fmt.Errorf("%s: invalid entry '%s'", key, t)
		default:
			set |= bits
		}
	}
	if len(tokens) > 0 && strings.EqualFold(strings.TrimSpace(tokens[0]), "off") {
		return 0, nil
	}
	return set, nil
}

// Has reports whether h enables every header of bits.
func (h Set) Has(bits Set) bool { return h&bits == bits }
