package plugins

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// ip-restriction (kong/plugins/ip-restriction/handler.lua): the client's
// address against deny, then allow lists of addresses and CIDR ranges.

func init() { register("ip-restriction", buildIPRestriction) }

type ipRestrictionConfig struct {
	Allow   []string `json:"allow"`
	Deny    []string `json:"deny"`
	Status  *float64 `json:"status"`
	Message *string  `json:"message"`
}

func buildIPRestriction(_ *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	var c ipRestrictionConfig
	if err := decodeConfig(p, &c); err != nil {
		return hooks, err
	}
	allow, err := parsePrefixes(c.Allow)
	if err != nil {
		return hooks, err
	}
	deny, err := parsePrefixes(c.Deny)
	if err != nil {
		return hooks, err
	}
	status := 403
	if c.Status != nil {
		status = int(*c.Status)
	}
	hooks[proxy.PhaseAccess] = func(x pdk.Exchange) {
		ip := x.ClientIP()
		if !ip.IsValid() {
			x.Error(403, "Cannot identify the client IP address, unix domain sockets are not supported.")
			return
		}
		if len(deny) > 0 && matchPrefixes(deny, ip) || len(allow) > 0 && !matchPrefixes(allow, ip) {
			msg := deref(c.Message)
			if c.Message == nil {
				msg = "IP address not allowed: " + ip.String()
			}
			x.Error(status, msg)
		}
	}
	return hooks, nil
}

func parsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, fmt.Errorf("ip-restriction: %q: %w", s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func matchPrefixes(list []netip.Prefix, ip netip.Addr) bool {
	for _, p := range list {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
