package gossip

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/serf/serf"
)

// pingQueryName is the serf query every node answers for reachability.
const pingQueryName = "gv-ping"

// Reachability is who answered a cluster-wide ping over gossip.
type Reachability struct {
	Acked    []string // members whose serf acknowledged the query
	Answered []string // members whose node answered it
	Missing  []string // alive members that did neither in time
}

// Reachability asks every member to answer over gossip and waits until all
// alive members answered, or timeout.
func (c *Cluster) Reachability(timeout time.Duration) (Reachability, error) {
	params := c.serf.DefaultQueryParams()
	params.RequestAck = true
	params.Timeout = timeout
	resp, err := c.serf.Query(pingQueryName, nil, params)
	if err != nil {
		return Reachability{}, fmt.Errorf("sending reachability query: %w", err)
	}
	acked, answered := map[string]bool{}, map[string]bool{}
	ackCh, respCh := resp.AckCh(), resp.ResponseCh()
	alive := c.aliveCount()
	for (ackCh != nil || respCh != nil) && len(answered) < alive {
		select {
		case name, ok := <-ackCh:
			if !ok {
				ackCh = nil
				continue
			}
			acked[name] = true
		case r, ok := <-respCh:
			if !ok {
				respCh = nil
				continue
			}
			answered[r.From] = true
		}
	}
	return c.reachabilityReport(acked, answered), nil
}

// aliveCount is how many members serf believes alive, this node included.
func (c *Cluster) aliveCount() int {
	n := 0
	for _, m := range c.serf.Members() {
		if m.Status == serf.StatusAlive {
			n++
		}
	}
	return n
}

func (c *Cluster) reachabilityReport(acked, answered map[string]bool) Reachability {
	var r Reachability
	for _, m := range c.serf.Members() {
		if acked[m.Name] {
			r.Acked = append(r.Acked, m.Name)
		}
		if answered[m.Name] {
			r.Answered = append(r.Answered, m.Name)
		}
		if m.Status == serf.StatusAlive && !acked[m.Name] && !answered[m.Name] {
			r.Missing = append(r.Missing, m.Name)
		}
	}
	sort.Strings(r.Acked)
	sort.Strings(r.Answered)
	sort.Strings(r.Missing)
	return r
}

// answerQuery answers the queries this package defines.
func (c *Cluster) answerQuery(q *serf.Query) {
	switch q.Name {
	case pingQueryName:
		c.answerPing(q)
	case statusQueryName:
		c.answerStatus(q)
	}
}

func (c *Cluster) answerPing(q *serf.Query) {
	if err := q.Respond([]byte(c.cfg.NodeName)); err != nil {
		c.log.Debug().Err(err).Msg("answering reachability query")
	}
}

func joinHostPort(host string, port uint16) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}
