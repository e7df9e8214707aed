package node

import (
	"context"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/grapevine-gw/grapevine/proxy/metrics"
)

// writeMetrics is the Admin API's GET /metrics: the prometheus plugin's
// counts and the node's gauges read now (kong/plugins/prometheus/
// exporter.lua metric_data): connections, the database's reachability
// and, when a plugin asks, the upstream targets' health.
func (n *Node) writeMetrics(ctx context.Context, w io.Writer) error {
	st := n.proxyStats()
	g := metrics.Gauges{NodeID: n.id, Version: KongVersion,
		Accepted: st.ConnectionsAccepted, Handled: st.ConnectionsHandled, Active: st.ConnectionsActive,
		Reading: st.ConnectionsReading, Writing: st.ConnectionsWriting, Waiting: st.ConnectionsWaiting,
		Requests: st.TotalRequests}
	if n.store != nil {
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		reachable := n.store.Ping(pctx) == nil
		cancel()
		if !reachable {
			n.log.Error().Msg("prometheus: failed to reach database while processing /metrics endpoint")
		}
		g.DatastoreReachable = &reachable
	}
	g.Targets = n.targetHealth()
	return n.metrics().Write(w, g)
}

// pingTimeout bounds the database check of a scrape, as GET /status's.
const pingTimeout = time.Second

// metrics is the registry the node's prometheus plugins count in.
func (n *Node) metrics() *metrics.Registry { return n.applier.plugins.Metrics }

// targetHealth lists every address of every upstream's targets with its
// health in Kong's lower case (dns_error for a target without address).
func (n *Node) targetHealth() []metrics.Target {
	reg := n.proxy.Balancers()
	var out []metrics.Target
	for _, u := range reg.Upstreams() {
		targets, _, ok := reg.Health(u.ID)
		if !ok {
			continue
		}
		for name, t := range targets {
			if len(t.Addresses) == 0 {
				out = append(out, metrics.Target{Upstream: u.Name, Target: name, Health: "dns_error"})
				continue
			}
			for _, a := range t.Addresses {
				out = append(out, metrics.Target{Upstream: u.Name, Target: name,
					Address: a.IP + ":" + strconv.Itoa(a.Port), Health: strings.ToLower(a.Health)})
			}
		}
	}
	return out
}
