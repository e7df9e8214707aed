package plugins

import (
	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/metrics"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// prometheus (kong/plugins/prometheus/handler.lua and exporter.lua):
// the log phase counts the request in the node's metrics registry, each
// family only when its config flag is on; GET /metrics on the Admin API
// writes them (proxy/metrics). Labels are Kong's: the service's name (or
// host), the route's name (or id), the consumer's username with
// per_consumer.

func init() { register("prometheus", buildPrometheus) }

type prometheusConfig struct {
	PerConsumer           bool `json:"per_consumer"`
	StatusCodeMetrics     bool `json:"status_code_metrics"`
	LatencyMetrics        bool `json:"latency_metrics"`
	BandwidthMetrics      bool `json:"bandwidth_metrics"`
	UpstreamHealthMetrics bool `json:"upstream_health_metrics"`
}

func buildPrometheus(env *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	var c prometheusConfig
	if err := decodeConfig(p, &c); err != nil {
		return hooks, err
	}
	reg := env.metrics()
	reg.Track(p.ID, c.UpstreamHealthMetrics)
	hooks[proxy.PhaseLog] = func(x pdk.Exchange) {
		info := x.Log()
		o := metrics.Observation{Service: info.ServiceName, Route: info.RouteName}
		if o.Service == "" {
			o.Service = info.ServiceHost
		}
		if o.Route == "" {
			o.Route = info.RouteID
		}
		if c.PerConsumer {
			if cons := x.Consumer(); cons != nil {
				o.Consumer = cons.Username
			}
		}
		if c.StatusCodeMetrics {
			o.StatusCode, o.FromService = x.Status(), info.Source == "service"
		}
		if c.BandwidthMetrics {
			o.Bandwidth, o.Ingress, o.Egress = true, info.RequestSize, info.ResponseSize
		}
		if c.LatencyMetrics {
			o.Latencies, o.Kong, o.Upstream, o.Total = true, info.KongLatency, info.ProxyLatency, info.RequestLatency
		}
		reg.Observe(&o)
	}
	return hooks, nil
}
