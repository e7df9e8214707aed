package plugins

import (
	"slices"
	"strings"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// acl (kong/plugins/acl/handler.lua): lets a consumer through by its
// groups, allow or deny, after an authentication plugin identified it.
// Groups authenticated by other means (ldap, oauth2) do not exist here.

func init() { register("acl", buildACL) }

type aclConfig struct {
	Allow            []string `json:"allow"`
	Deny             []string `json:"deny"`
	HideGroupsHeader bool     `json:"hide_groups_header"`
}

const msgCannotConsume = "You cannot consume this service"

func buildACL(env *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	var c aclConfig
	if err := decodeConfig(p, &c); err != nil {
		return hooks, err
	}
	deny := len(c.Deny) > 0
	groups := c.Allow
	if deny {
		groups = c.Deny
	}
	hooks[proxy.PhaseAccess] = func(x pdk.Exchange) {
		consumer := x.Consumer()
		if consumer == nil {
			if x.Credential() != nil {
				x.Error(403, msgCannotConsume)
			} else {
				x.Error(401, msgUnauthorized)
			}
			return
		}
		// The index republishes a consumer when its groups change.
		if fresh := env.Index.Consumer(consumer.ID); fresh != nil {
			consumer = fresh
		}
		if len(consumer.Groups) == 0 && !deny {
			if x.Credential() != nil {
				x.Error(403, msgCannotConsume)
			} else {
				x.Error(401, msgUnauthorized)
			}
			return
		}
		in := slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(consumer.Groups, g) })
		if in == deny {
			x.Error(403, msgCannotConsume)
			return
		}
		if !c.HideGroupsHeader && len(consumer.Groups) > 0 {
			x.SetUpstreamHeader(hdrConsumerGroups, strings.Join(consumer.Groups, ", "))
		}
	}
	return hooks, nil
}
