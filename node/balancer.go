package node

import (
	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
)

// Upstreams and targets stay in configState.others (as their kinds decode
// them); these helpers hand them to the proxy's Builder, which compiles
// one balancer per upstream.

const (
	upstreamsTable = "upstreams"
	targetsTable   = "targets"
)

// balancerInput adds every upstream and target to a full build's input.
func (s *configState) balancerInput(in *proxy.SnapshotInput) {
	in.Upstreams = sortedOthers[entity.Upstream](s.others[upstreamsTable])
	in.Targets = sortedOthers[entity.Target](s.others[targetsTable])
}

// balancerChange adds a changed upstream or target to c; it reports
// whether key was one.
func (s *configState) balancerChange(c *proxy.SnapshotChange, key entityKey) bool {
	v, ok := s.others[key.Table][key.ID]
	switch key.Table {
	case upstreamsTable:
		if ok {
			c.Put.Upstreams = append(c.Put.Upstreams, v.(entity.Upstream))
		} else {
			c.Deleted.Upstreams = append(c.Deleted.Upstreams, key.ID)
		}
	case targetsTable:
		if ok {
			c.Put.Targets = append(c.Put.Targets, v.(entity.Target))
		} else {
			c.Deleted.Targets = append(c.Deleted.Targets, key.ID)
		}
	default:
		return false
	}
	return true
}

// sortedOthers returns the entities of one kind of configState.others
// ordered by id.
func sortedOthers[T any](m map[string]any) []T {
	typed := make(map[string]T, len(m))
	for id, v := range m {
		if e, ok := v.(T); ok {
			typed[id] = e
		}
	}
	return sortedValues(typed)
}
