package gossip

import (
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// Member is one node as this node sees it.
type Member struct {
	Name   string
	Addr   string // cluster address host:port
	Status string // alive, suspect, leaving, left, failed
	Tags   map[string]string
}

// Members lists every member serf knows, this node included.
func (c *Cluster) Members() []Member {
	suspects := c.suspects()
	serfMembers := c.serf.Members()
	out := make([]Member, 0, len(serfMembers))
	for _, m := range serfMembers {
		status := m.Status.String()
		if m.Status == serf.StatusAlive && suspects[m.Name] {
			status = "suspect"
		}
		out = append(out, Member{
			Name:   m.Name,
			Addr:   joinHostPort(m.Addr.String(), m.Port),
			Status: status,
			Tags:   copyTags(m.Tags),
		})
	}
	return out
}

// suspects names the members memberlist currently suspects of having failed;
// serf reports them as alive until the suspicion times out.
func (c *Cluster) suspects() map[string]bool {
	out := map[string]bool{}
	for _, n := range c.serf.Memberlist().Members() {
		if n.State == memberlist.StateSuspect {
			out[n.Name] = true
		}
	}
	return out
}
