package node

import (
	"errors"

	"github.com/grapevine-gw/grapevine/admin"
	"github.com/grapevine-gw/grapevine/gossip"
	"github.com/grapevine-gw/grapevine/proxy/balancer"
)

// nodeHealth gives the Admin API this node's balancer health, and sends
// a target's health set by hand to every node (Kong broadcasts it as its
// "balancer:post_health" cluster event).
type nodeHealth struct{ n *Node }

func (h nodeHealth) Targets(upstreamID string) (map[string]admin.TargetHealth, bool) {
	targets, _, ok := h.n.proxy.Balancers().Health(upstreamID)
	if !ok {
		return nil, false
	}
	out := make(map[string]admin.TargetHealth, len(targets))
	for name, t := range targets {
		out[name] = admin.TargetHealth{Health: t.Summary(), Data: t}
	}
	return out, true
}

func (h nodeHealth) Balancer(upstreamID string) (any, bool) {
	_, whole, ok := h.n.proxy.Balancers().Health(upstreamID)
	if !ok {
		return nil, false
	}
	return whole, true
}

func (h nodeHealth) SetHealth(upstreamID, hostname, ip string, port int, healthy bool) error {
	if err := h.n.proxy.Balancers().SetHealth(upstreamID, hostname, ip, port, healthy); err != nil {
		return err
	}
	if h.n.gossip == nil {
		return nil
	}
	ev := gossip.HealthEvent{UpstreamID: upstreamID, Hostname: hostname, IP: ip, Port: port, Healthy: healthy}
	if err := h.n.gossip.BroadcastHealth(ev); err != nil {
		// This node has it; the others keep their own until they see it.
		h.n.log.Warn().Err(err).Str("upstream", upstreamID).Msg("could not send the target's health to the other nodes")
	}
	return nil
}

// onHealth applies a health event from another node (or this one's own,
// already applied: setting a health again changes nothing).
func (n *Node) onHealth(e gossip.HealthEvent) {
	err := n.proxy.Balancers().SetHealth(e.UpstreamID, e.Hostname, e.IP, e.Port, e.Healthy)
	if err != nil && !errors.Is(err, balancer.ErrUnknownUpstream) {
		n.log.Debug().Err(err).Str("upstream", e.UpstreamID).Msg("health event not applied")
	}
}
