package node

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/grapevine-gw/grapevine/admin"
	"github.com/grapevine-gw/grapevine/gossip"
)

// reachabilityTimeout bounds GET /cluster/reachability.
const reachabilityTimeout = 3 * time.Second

// statusTimeout bounds how long GET /cluster waits for members to say
// which configuration they serve; one that has not answered by then is
// shown with hashUnknown.
const statusTimeout = time.Second

// hashUnknown is the config hash shown for a member that did not answer.
const hashUnknown = "unknown"

// clusterView implements the Admin API's /cluster over the gossip layer.
type clusterView struct{ n *Node }

var _ admin.Cluster = clusterView{}

// Status lists every member with the configuration hash it answered just
// now (not its gossiped tag, which can lag by many seconds), and whether
// all alive members serve the same one. A member that does not answer
// within statusTimeout shows hashUnknown, and then agreement is not claimed.
func (v clusterView) Status(ctx context.Context) (admin.ClusterStatus, error) {
	status := admin.ClusterStatus{Node: v.n.name, ConfigHash: v.n.ConfigHash(), Gossip: v.n.gossip != nil}
	if v.n.gossip == nil {
		return v.registryStatus(ctx, status)
	}
	for _, m := range v.n.gossip.LiveMembers(statusTimeout) {
		status.Members = append(status.Members, memberFromGossip(m))
	}
	sortMembers(status.Members)
	status.ConfigHashAgreed = hashesAgree(status.Members)
	return status, nil
}

// registryStatus is the view without gossip: the registry's rows, with no
// liveness beyond when each node was last seen.
func (v clusterView) registryStatus(ctx context.Context, status admin.ClusterStatus) (admin.ClusterStatus, error) {
	if v.n.store == nil {
		// DB-less without gossip: a cluster of one.
		status.Members = []admin.ClusterMember{{Name: v.n.name, Status: "alive", ConfigHash: status.ConfigHash, Version: Version}}
		return status, nil
	}
	nodes, err := v.n.store.Nodes(ctx)
	if err != nil {
		return status, fmt.Errorf("reading the node registry: %w", err)
	}
	for _, rec := range nodes {
		m := admin.ClusterMember{Name: rec.Name, ClusterAddr: rec.ClusterAddr, ProxyAddr: rec.ProxyAddr, AdminAddr: rec.AdminAddr, Status: "unknown", ConfigHash: hashUnknown, Version: rec.Version}
		if rec.Name == v.n.name {
			m.Status, m.ConfigHash = "alive", status.ConfigHash
		}
		status.Members = append(status.Members, m)
	}
	return status, nil
}

// memberFromGossip renders a member: addresses and version from its tags
// (they do not change while it runs), what it serves from its live answer.
func memberFromGossip(m gossip.LiveMember) admin.ClusterMember {
	out := admin.ClusterMember{
		Name:        m.Name,
		ClusterAddr: m.Addr,
		ProxyAddr:   m.Tags[tagProxy],
		AdminAddr:   m.Tags[tagAdmin],
		Status:      m.Status,
		ConfigHash:  hashUnknown,
		Version:     m.Tags[tagVersion],
	}
	if hash := m.Live[tagConfigHash]; hash != "" {
		out.ConfigHash = hash
	}
	if ms, err := strconv.ParseInt(m.Live[tagAppliedAt], 10, 64); err == nil {
		out.LastAppliedAt = &ms
	}
	return out
}

func sortMembers(members []admin.ClusterMember) {
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
}

// hashesAgree reports whether every alive member answered with the same
// hash; a member that did not answer leaves agreement unknown, so false.
func hashesAgree(members []admin.ClusterMember) bool {
	hash := ""
	for _, m := range members {
		if m.Status != "alive" && m.Status != "suspect" {
			continue
		}
		if m.ConfigHash == hashUnknown {
			return false
		}
		if hash == "" {
			hash = m.ConfigHash
		}
		if m.ConfigHash != hash {
			return false
		}
	}
	return true
}

// ForceLeave removes a failed member from the cluster and the registry.
func (v clusterView) ForceLeave(ctx context.Context, name string) error {
	if v.n.gossip == nil {
		return admin.ErrGossipOff
	}
	for _, m := range v.n.gossip.Members() {
		if m.Name != name {
			continue
		}
		if m.Status == "alive" || m.Status == "leaving" {
			return fmt.Errorf("node %s is %s: %w", name, m.Status, admin.ErrNodeNotFailed)
		}
		if err := v.n.gossip.ForceLeave(name); err != nil {
			return err
		}
		if v.n.store == nil {
			return nil // DB-less: no registry
		}
		return v.n.store.DeleteNode(ctx, name)
	}
	return fmt.Errorf("node %s: %w", name, admin.ErrNodeNotFound)
}

// Reachability asks every member to answer over gossip.
func (v clusterView) Reachability(ctx context.Context) (admin.Reachability, error) {
	if v.n.gossip == nil {
		return admin.Reachability{}, admin.ErrGossipOff
	}
	r, err := v.n.gossip.Reachability(reachabilityTimeout)
	if err != nil {
		return admin.Reachability{}, err
	}
	return admin.Reachability{Acked: nonNil(r.Acked), Answered: nonNil(r.Answered), Missing: nonNil(r.Missing)}, nil
}

func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// Keys runs a keyring operation across the cluster.
func (v clusterView) Keys(ctx context.Context, op, key string) (admin.KeyReport, error) {
	if v.n.gossip == nil {
		return admin.KeyReport{}, admin.ErrGossipOff
	}
	var report gossip.KeyReport
	var err error
	switch op {
	case "list":
		report, err = v.n.gossip.ListKeys()
	case "install":
		report, err = v.n.gossip.InstallKey(key)
	case "use":
		report, err = v.n.gossip.UseKey(key)
	case "remove":
		report, err = v.n.gossip.RemoveKey(key)
	default:
		return admin.KeyReport{}, fmt.Errorf("unknown keyring operation %q", op)
	}
	return admin.KeyReport{Nodes: report.NumNodes, Responses: report.NumResp, Errors: report.Errors, Keys: report.Keys, Primary: report.Primary}, err
}
