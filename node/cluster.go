package node

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/grapevine-gw/grapevine/internal/listen"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/grapevine-gw/grapevine/gossip"
	"github.com/grapevine-gw/grapevine/store"
)

// Tags every member publishes over gossip.
const (
	tagConfigHash = "hash"
	tagAppliedAt  = "applied" // unix milliseconds of the last applied change
	tagProxy      = "proxy"
	tagAdmin      = "admin"
	tagVersion    = "version"
)

// defaultHeartbeat is how often a node refreshes its row in the registry.
const defaultHeartbeat = 10 * time.Second

// eventRetention is how long cluster_events rows are kept.
const eventRetention = time.Hour

func (n *Node) startGossip() error {
	if n.cfg.ClusterListen == "" {
		n.log.Info().Msg("cluster_listen is off: no gossip, changes arrive by polling only")
		return nil
	}
	var key []byte
	if n.cfg.ClusterEncryptKey != "" {
		key, _ = base64.StdEncoding.DecodeString(n.cfg.ClusterEncryptKey) // validated by config
	}
	status := n.applier.status.Load()
	cluster, err := n.startGossipWithin(gossip.Config{
		NodeName:         n.name,
		BindAddr:         n.cfg.ClusterListen,
		AdvertiseAddr:    n.cfg.ClusterAdvertise,
		EncryptKey:       key,
		KeyringFile:      n.cfg.ClusterKeyringFile,
		FastTimers:       n.hooks.FastGossip,
		ReconnectTimeout: n.cfg.ClusterTTLOnFailure,
		Tags: map[string]string{
			tagConfigHash: status.Hash,
			tagAppliedAt:  strconv.FormatInt(status.AppliedAt.UnixMilli(), 10),
			tagProxy:      n.advertisedListen(n.cfg.ProxyListen),
			tagAdmin:      n.advertisedListen(n.cfg.AdminListen),
			tagVersion:    Version,
		},
		OnHint:   n.onHint,
		OnHealth: n.onHealth,
		Status:   n.liveStatus,
		Logger:   n.log.With().Str("component", "gossip").Logger(),
	})
	if err != nil {
		return err
	}
	n.gossip = cluster
	n.tagCh = make(chan applyStatus, 1)
	return nil
}

// predecessorLeaveTimeout bounds the wait for the cluster port of a node
// this one replaces in place (it holds the port until it has left).
const predecessorLeaveTimeout = 30 * time.Second

// startGossipWithin starts gossip; a node given its predecessor's sockets
// retries while the predecessor, still draining, holds the cluster port.
func (n *Node) startGossipWithin(cfg gossip.Config) (*gossip.Cluster, error) {
	deadline := time.Now().Add(predecessorLeaveTimeout)
	for {
		cluster, err := gossip.Start(cfg)
		if err == nil || n.sockets == nil || !n.sockets.HandedDown() || time.Now().After(deadline) {
			return cluster, err
		}
		n.log.Info().Err(err).Msg("waiting for the node this one replaces to leave the cluster port")
		time.Sleep(100 * time.Millisecond)
	}
}

// liveStatus is this node's answer to a status query: what it serves now.
func (n *Node) liveStatus() map[string]string {
	status := map[string]string{tagConfigHash: n.ConfigHash()}
	if s := n.applier.status.Load(); s != nil {
		status[tagAppliedAt] = strconv.FormatInt(s.AppliedAt.UnixMilli(), 10)
	}
	return status
}

// advertisedListen is the address peers and operators use for a listener:
// a wildcard host is replaced by the cluster's advertised host.
func (n *Node) advertisedListen(list []string) string {
	host, port, err := net.SplitHostPort(listen.AddrOf(firstListen(list, "")))
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() && n.clusterAddr != "" {
		host, _, _ = net.SplitHostPort(n.clusterAddr)
	}
	return net.JoinHostPort(host, port)
}

// onHint queues a gossip hint for the applier; when its queue is full the
// hint is dropped and polling picks the change up.
func (n *Node) onHint(h gossip.Hint) {
	if n.hooks.IgnoreHints || n.dbless != nil {
		return
	}
	select {
	case n.applier.hintCh <- h:
	default:
		n.log.Warn().Int64("event", h.EventID).Msg("hint queue full; leaving the change to polling")
	}
}

// broadcast hints the cluster about a committed local change.
func (n *Node) broadcast(c store.Change) {
	if n.gossip == nil || c.EventID == 0 {
		return
	}
	if n.hooks.BeforeHintForTest != nil {
		n.hooks.BeforeHintForTest(c)
	}
	h := gossip.Hint{EventID: c.EventID, Table: c.Table, ID: c.ID, Op: c.Op, Origin: n.name}
	if err := n.gossip.Broadcast(h); err != nil {
		n.log.Warn().Err(err).Msg("broadcasting hint failed; peers will poll")
	}
}

// publishStatus hands the latest config hash and apply time to the tag
// publisher without blocking: serf's SetTags waits for its broadcast, and
// the applier must never wait on gossip. Only the newest status matters.
func (n *Node) publishStatus(s applyStatus) {
	if n.tagCh == nil {
		return
	}
	for {
		select {
		case n.tagCh <- s:
			return
		default:
		}
		select {
		case <-n.tagCh: // drop the stale status still waiting
		default:
		}
	}
}

// tagPublisher publishes statuses as gossip tags, one at a time.
func (n *Node) tagPublisher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-n.tagCh:
			err := n.gossip.SetTags(map[string]string{
				tagConfigHash: s.Hash,
				tagAppliedAt:  strconv.FormatInt(s.AppliedAt.UnixMilli(), 10),
			})
			if err != nil {
				n.log.Debug().Err(err).Msg("publishing config hash is slow; the newest value follows")
			}
		}
	}
}

// register records this node in the shared registry and joins the peers
// listed there (plus cluster_join), so no seed list is needed.
func (n *Node) register(ctx context.Context) error {
	record := store.NodeRecord{
		Name:      n.name,
		ProxyAddr: n.advertisedListen(n.cfg.ProxyListen),
		AdminAddr: n.advertisedListen(n.cfg.AdminListen),
		Version:   Version,
	}
	record.Hostname, _ = os.Hostname()
	record.ClusterAddr = n.clusterAddr
	dbCtx, cancel := n.dbCtx(ctx)
	defer cancel()
	if err := n.store.RegisterNode(dbCtx, record); err != nil {
		return fmt.Errorf("registering node %s: %w", n.name, err)
	}
	n.joinPeers(ctx)
	return nil
}

// joinPeers joins the registry's recently seen nodes and cluster_join.
// Reaching no one is fine: the node is a cluster of one until someone
// answers, and it keeps serving.
func (n *Node) joinPeers(ctx context.Context) {
	if n.gossip == nil {
		return
	}
	peers := append([]string{}, n.cfg.ClusterJoin...)
	if n.store != nil { // DB-less, cluster_join alone names the peers
		peers = append(peers, n.registeredPeers(ctx)...)
	}
	n.join(peers)
}

// joinCachedPeers joins cluster_join and the peers the configuration
// cache names, without reading the registry: a node starting from its
// cache has just found the database out of reach.
func (n *Node) joinCachedPeers() {
	if n.gossip == nil {
		return
	}
	n.join(append(append([]string{}, n.cfg.ClusterJoin...), n.cachedPeers...))
}

func (n *Node) join(peers []string) {
	if len(peers) == 0 {
		return
	}
	joined, err := n.gossip.Join(peers)
	if err != nil {
		n.log.Warn().Err(err).Strs("peers", peers).Msg("no peer answered; serving as a cluster of one")
		return
	}
	n.log.Info().Int("joined", joined).Msg("joined the cluster")
}

// registeredPeers are the registry's recently seen nodes, or when it
// cannot be read the peers the configuration cache names.
func (n *Node) registeredPeers(ctx context.Context) []string {
	dbCtx, cancel := n.dbCtx(ctx)
	nodes, err := n.store.Nodes(dbCtx)
	cancel()
	if err != nil {
		n.log.Warn().Err(err).Int("cached_peers", len(n.cachedPeers)).Msg("reading the node registry failed; joining the peers the configuration cache names")
		return n.cachedPeers
	}
	var peers []string
	for _, rec := range nodes {
		if rec.Name != n.name && rec.ClusterAddr != "" && time.Since(rec.LastSeen) < n.cfg.ClusterTTLOnFailure {
			peers = append(peers, rec.ClusterAddr)
		}
	}
	return peers
}

// heartbeatLoop keeps this node's registry row fresh, purges dead rows and
// old events, and rejoins the cluster when this node finds itself alone.
func (n *Node) heartbeatLoop(ctx context.Context) {
	every(ctx, n.heartbeatInterval(), func(time.Time) { n.heartbeat(ctx) })
}

// heartbeatInterval is how often the registry row is refreshed (and a
// lonely node tries to rejoin).
func (n *Node) heartbeatInterval() time.Duration {
	if n.hooks.HeartbeatInterval > 0 {
		return n.hooks.HeartbeatInterval
	}
	return defaultHeartbeat
}

// every calls fn with the tick's time every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func(now time.Time)) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			fn(now)
		}
	}
}

func (n *Node) heartbeat(ctx context.Context) {
	err := n.withDB(ctx, func(ctx context.Context) error { return n.store.TouchNode(ctx, n.name) })
	if errors.Is(err, store.ErrNotFound) {
		err = n.register(ctx) // purged while this node was cut off
	}
	if err != nil {
		n.log.Debug().Err(err).Msg("registry heartbeat failed")
		return
	}
	err = n.withDB(ctx, func(ctx context.Context) error {
		_, err := n.store.PurgeNodes(ctx, n.cfg.ClusterTTLOnFailure)
		return err
	})
	if err != nil {
		n.log.Debug().Err(err).Msg("purging dead nodes failed")
	}
	err = n.withDB(ctx, func(ctx context.Context) error {
		_, err := n.store.PurgeEvents(ctx, eventRetention)
		return err
	})
	if err != nil {
		n.log.Debug().Err(err).Msg("purging old cluster events failed")
	}
	err = n.withDB(ctx, func(ctx context.Context) error {
		_, err := n.store.PurgeRateLimits(ctx)
		return err
	})
	if err != nil {
		n.log.Debug().Err(err).Msg("purging rate-limiting counters of past windows failed")
	}
	n.purgeExpired(ctx)
	if n.gossip != nil && n.aliveMembers() <= 1 {
		n.joinPeers(ctx)
	}
}

// purgeExpired deletes the rows whose ttl has passed, as Kong's ttl
// cleanup timer does, and frees their credentials in the index (lookups
// refuse them from the moment they expire, sweep or not).
func (n *Node) purgeExpired(ctx context.Context) {
	err := n.withDB(ctx, func(ctx context.Context) error {
		_, err := n.store.DeleteExpired(ctx)
		return err
	})
	if err != nil {
		n.log.Debug().Err(err).Msg("deleting expired credentials failed")
	}
	if n.applier != nil && n.applier.plugins != nil {
		n.applier.plugins.Index.ForgetExpired(time.Now())
	}
}

// dbCtx bounds one database call of the background work by pg_timeout,
// so a database that stops answering cannot hold the caller.
func (n *Node) dbCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, n.dbTimeout())
}

// withDB runs one database call under dbCtx.
func (n *Node) withDB(ctx context.Context, call func(context.Context) error) error {
	ctx, cancel := n.dbCtx(ctx)
	defer cancel()
	return call(ctx)
}

func (n *Node) aliveMembers() int {
	count := 0
	for _, m := range n.gossip.Members() {
		if m.Status == "alive" {
			count++
		}
	}
	return count
}

// leave tells the cluster and the registry that this node is going away.
func (n *Node) leave(ctx context.Context) error {
	var errs []error
	if n.gossip != nil {
		errs = append(errs, n.gossip.Leave())
	}
	if n.store != nil && n.name != "" {
		if err := n.store.DeleteNode(ctx, n.name); err != nil {
			n.log.Debug().Err(err).Msg("removing this node from the registry failed")
		}
	}
	return errors.Join(errs...)
}
