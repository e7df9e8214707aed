package gossip

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Health events carry a target's health set by hand through the Admin
// API (PUT /upstreams/{u}/targets/{t}/healthy), which Kong broadcasts to
// every node as its "balancer:post_health" cluster event. Health is each
// node's own state, not configuration: there is nothing in the database
// to read, so the event carries the change itself. A forged one can take
// a target out of rotation on a node until a check or a later event puts
// it back, as with Kong's cluster events; encrypt the gossip
// (cluster_encrypt_key) where that matters.

// healthEventName is the serf user event name of health events.
const healthEventName = "gv-health"

// HealthEvent sets the health of a target's addresses on every node.
type HealthEvent struct {
	UpstreamID string
	Hostname   string // the target's host
	IP         string // one address, or "" for all of the target's
	Port       int
	Healthy    bool
}

// encode renders an event as "v1|upstream|hostname|ip|port|0 or 1".
func (e HealthEvent) encode() []byte {
	healthy := "0"
	if e.Healthy {
		healthy = "1"
	}
	return []byte(strings.Join([]string{"v1", e.UpstreamID, e.Hostname, e.IP, strconv.Itoa(e.Port), healthy}, "|"))
}

func decodeHealthEvent(payload []byte) (HealthEvent, error) {
	if len(payload) > maxHintSize {
		return HealthEvent{}, fmt.Errorf("health event of %d bytes exceeds %d", len(payload), maxHintSize)
	}
	parts := strings.Split(string(payload), "|")
	if len(parts) != 6 || parts[0] != "v1" {
		return HealthEvent{}, errors.New("health event is not in the v1 format")
	}
	port, err := strconv.Atoi(parts[4])
	if err != nil || port < 0 || port > 65535 {
		return HealthEvent{}, fmt.Errorf("health event port %q is not a port", parts[4])
	}
	return HealthEvent{UpstreamID: parts[1], Hostname: parts[2], IP: parts[3], Port: port, Healthy: parts[5] == "1"}, nil
}

// BroadcastHealth sends a health event to every member, directly and
// over gossip, as Broadcast does with hints.
func (c *Cluster) BroadcastHealth(e HealthEvent) error {
	payload := e.encode()
	if len(payload) > maxHintSize {
		return fmt.Errorf("health event of %d bytes exceeds %d", len(payload), maxHintSize)
	}
	return c.broadcastEvent(healthEventName, payload)
}
