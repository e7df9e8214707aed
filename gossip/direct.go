package gossip

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// Gossip spends up to one gossip interval per hop, and under load a node's
// own membership updates fill its packets before user events get a place.
// So Broadcast also sends the hint straight to every alive member, over
// memberlist's direct (encrypted, best-effort UDP) path, as the very serf
// user event that gossip carries: serf's receivers treat both copies as
// one event, deliver it once and gossip it on to anyone the direct send
// missed. Members that miss both still get the change by polling.

// serfUserEventType is serf's wire tag for a user event message
// (messageUserEventType in serf/messages.go, serf v0.11 protocol 5).
const serfUserEventType = 3

// serfUserEvent mirrors serf's messageUserEvent field for field; serf
// decodes it by field name.
type serfUserEvent struct {
	LTime   uint64
	Name    string
	Payload []byte
	CC      bool
}

// encodeUserEvent renders a user event as serf puts it on the wire.
func encodeUserEvent(ltime uint64, name string, payload []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(serfUserEventType)
	handle := codec.MsgpackHandle{}
	if err := codec.NewEncoder(&buf, &handle).Encode(&serfUserEvent{LTime: ltime, Name: name, Payload: payload}); err != nil {
		return nil, fmt.Errorf("encoding user event: %w", err)
	}
	return buf.Bytes(), nil
}

// eventTime is serf's user event clock: the Lamport time the next
// UserEvent call will stamp.
func (c *Cluster) eventTime() (uint64, bool) {
	ltime, err := strconv.ParseUint(c.serf.Stats()["event_time"], 10, 64)
	return ltime, err == nil
}

// sendDirect sends an encoded user event to every other alive member. It
// addresses them from serf's member list, which is copied under serf's
// lock; memberlist's own Members() hands out nodes it keeps mutating.
func (c *Cluster) sendDirect(raw []byte) {
	ml := c.serf.Memberlist()
	for _, member := range c.serf.Members() {
		if member.Name == c.cfg.NodeName || member.Status != serf.StatusAlive {
			continue
		}
		to := &memberlist.Node{Name: member.Name, Addr: member.Addr, Port: member.Port}
		if err := ml.SendBestEffort(to, raw); err != nil {
			c.log.Debug().Err(err).Str("member", member.Name).Msg("direct hint send failed; gossip will carry it")
		}
	}
}
