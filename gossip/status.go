package gossip

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/serf/serf"
)

// Tags reach the other members as memberlist alive messages, which share
// each packet with everything else memberlist gossips; on a busy cluster
// of 10–20 nodes a tag change took 30–40 s to show everywhere. A view an
// operator reads must not lag like that, so it asks every member for its
// live status with a serf query (answered straight to the asker) and
// reports a member that does not answer in time as not answering, never
// with an old tag.

// statusQueryName is the serf query every node answers with its live status.
const statusQueryName = "gv-status"

// LiveMember is a member with the status it answered just now.
type LiveMember struct {
	Member
	// Live is the member's answer to the status query (Config.Status);
	// nil when it did not answer in time.
	Live map[string]string
}

// LiveMembers is ProbedMembers, with every member asked for its live
// status at the same time; it returns once every alive member answered, or
// after timeout. A member that answered is alive even if its ping was
// late: the ping's deadline is memberlist's probe timeout, tight for a
// busy host, and the answer proves the member is there.
func (c *Cluster) LiveMembers(timeout time.Duration) []LiveMember {
	var wg sync.WaitGroup
	var members []Member
	wg.Add(1)
	go func() {
		defer wg.Done()
		members = c.ProbedMembers()
	}()
	answers, err := c.QueryStatus(timeout)
	if err != nil {
		c.log.Warn().Err(err).Msg("asking members for their status failed")
	}
	wg.Wait()
	// The query may have waited a whole timeout for a member that died
	// meanwhile: report what serf knows now, not what it knew before.
	now := map[string]string{}
	for _, m := range c.Members() {
		now[m.Name] = m.Status
	}
	out := make([]LiveMember, len(members))
	for i, m := range members {
		if st, ok := now[m.Name]; ok && st != serf.StatusAlive.String() {
			m.Status = st
		}
		out[i] = LiveMember{Member: m, Live: answers[m.Name]}
		if out[i].Live != nil && m.Status == "suspect" {
			out[i].Status = serf.StatusAlive.String()
		}
	}
	return out
}

// QueryStatus asks every member for its live status (Config.Status) and
// returns the answers by member name, this node's own included; members
// that did not answer within timeout are absent. A query and its answers
// are single UDP packets, and on a busy host one gets lost now and then;
// so a third of the way in, the members still silent are asked again.
func (c *Cluster) QueryStatus(timeout time.Duration) (map[string]map[string]string, error) {
	answers := map[string]map[string]string{}
	if c.cfg.Status != nil {
		answers[c.cfg.NodeName] = c.cfg.Status()
	}
	silent := c.aliveOthers()
	if len(silent) == 0 {
		return answers, nil
	}
	deadline := time.Now().Add(timeout)
	first, err := c.statusQuery(timeout, nil)
	if err != nil {
		return answers, err
	}
	defer first.Close()
	again := time.NewTimer(timeout / 3)
	defer again.Stop()
	firstCh := first.ResponseCh()
	var secondCh <-chan serf.NodeResponse
	for len(silent) > 0 && (firstCh != nil || secondCh != nil) {
		select {
		case r, ok := <-firstCh:
			if !ok {
				firstCh = nil
				continue
			}
			c.takeAnswer(answers, silent, r)
		case r, ok := <-secondCh:
			if !ok {
				secondCh = nil
				continue
			}
			c.takeAnswer(answers, silent, r)
		case <-again.C:
			second, err := c.statusQuery(time.Until(deadline), sortedKeys(silent))
			if err != nil {
				continue
			}
			defer second.Close()
			secondCh = second.ResponseCh()
		}
	}
	return answers, nil
}

// statusQuery sends one status query, to the named members only if any.
func (c *Cluster) statusQuery(timeout time.Duration, only []string) (*serf.QueryResponse, error) {
	params := c.serf.DefaultQueryParams()
	params.Timeout = timeout
	params.FilterNodes = only
	resp, err := c.serf.Query(statusQueryName, nil, params)
	if err != nil {
		return nil, fmt.Errorf("sending status query: %w", err)
	}
	return resp, nil
}

// takeAnswer records one member's answer and strikes it off silent.
func (c *Cluster) takeAnswer(answers map[string]map[string]string, silent map[string]bool, r serf.NodeResponse) {
	var status map[string]string
	if err := json.Unmarshal(r.Payload, &status); err != nil {
		c.log.Warn().Err(err).Str("member", r.From).Msg("ignoring a malformed status answer")
		return
	}
	if r.From != c.cfg.NodeName {
		answers[r.From] = status
	}
	delete(silent, r.From)
}

// aliveOthers is the set of alive members besides this node.
func (c *Cluster) aliveOthers() map[string]bool {
	out := map[string]bool{}
	for _, m := range c.serf.Members() {
		if m.Status == serf.StatusAlive && m.Name != c.cfg.NodeName {
			out[m.Name] = true
		}
	}
	return out
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// answerStatus answers a status query with this node's live status.
func (c *Cluster) answerStatus(q *serf.Query) {
	if c.cfg.Status == nil {
		return
	}
	payload, err := json.Marshal(c.cfg.Status())
	if err != nil {
		c.log.Error().Err(err).Msg("encoding the status answer")
		return
	}
	if err := q.Respond(payload); err != nil {
		c.log.Debug().Err(err).Msg("answering status query")
	}
}
