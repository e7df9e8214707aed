package gossip

import (
	"net"
	"sync"

	"github.com/hashicorp/serf/serf"
)

// Member is one node as this node sees it.
type Member struct {
	Name   string
	Addr   string // cluster address host:port
	Status string // alive, suspect (with probe), leaving, left, failed
	Tags   map[string]string
}

// Members lists every member serf knows, this node included, with serf's
// status: alive, leaving, left or failed.
func (c *Cluster) Members() []Member {
	serfMembers := c.serf.Members()
	out := make([]Member, 0, len(serfMembers))
	for _, m := range serfMembers {
		out = append(out, Member{
			Name:   m.Name,
			Addr:   joinHostPort(m.Addr.String(), m.Port),
			Status: m.Status.String(),
			Tags:   copyTags(m.Tags),
		})
	}
	return out
}

// ProbedMembers is Members, with every alive peer pinged directly first:
// one that does not answer within the probe timeout is reported "suspect",
// as memberlist would suspect it before declaring it failed. (memberlist
// keeps its own suspicion state where it cannot be read safely.)
func (c *Cluster) ProbedMembers() []Member {
	members := c.Members()
	var wg sync.WaitGroup
	for i := range members {
		m := &members[i]
		if m.Name == c.cfg.NodeName || m.Status != serf.StatusAlive.String() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !c.answersPing(m.Name, m.Addr) {
				m.Status = "suspect"
			}
		}()
	}
	wg.Wait()
	return members
}

func (c *Cluster) answersPing(name, addr string) bool {
	udpAddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return false
	}
	_, err = c.serf.Memberlist().Ping(name, udpAddr)
	return err == nil
}
