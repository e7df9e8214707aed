// Package metrics keeps the counts of Kong's prometheus plugin
// (kong/plugins/prometheus/exporter.lua) and writes them, with the
// node's gauges read at scrape time, in Prometheus's text format as
// Kong's GET /metrics does: Kong's metric names, labels, histogram
// buckets, and its order (every series sorted by name and labels, a
// histogram's buckets in increasing order).
//
// Counting is lock-free once a series exists: a series is found in a map
// by a key of strings the request already holds, so counting allocates
// nothing after a series' first request.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kong's bucket bounds in milliseconds (exporter.lua KONG_LATENCY_BUCKETS
// and UPSTREAM_LATENCY_BUCKETS; the latter also for request latency).
var (
	KongLatencyBuckets     = []int64{1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000, 3000, 6000}
	UpstreamLatencyBuckets = []int64{25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000}
)

// workspace is the only workspace Grapevine has.
const workspace = "default"

// Observation is one request as the prometheus plugin's log phase counts
// it; a metric family is left out when its flag is off.
type Observation struct {
	Service, Route, Consumer string
	// StatusCode > 0 counts kong_http_requests_total; FromService says the
	// upstream answered (source "service", else "kong").
	StatusCode  int
	FromService bool
	// Bandwidth counts kong_bandwidth_bytes when set.
	Bandwidth             bool
	Ingress, Egress       int64
	Latencies             bool
	Kong, Upstream, Total time.Duration // Upstream < 0: nothing went upstream
}

type statusKey struct {
	service, route, consumer string
	code                     int
	fromService              bool
}

type routeKey struct{ service, route string }

type bandwidthKey struct{ service, route, consumer string }

type bandwidth struct{ ingress, egress atomic.Int64 }

// histogram is one series of a histogram: a count per bucket (not
// cumulative; summed when written), the total count and sum in ms.
type histogram struct {
	buckets []atomic.Int64 // len(bounds)+1, the last is +Inf
	count   atomic.Int64
	sum     atomic.Int64
}

func (h *histogram) observe(bounds []int64, ms int64) {
	i, _ := slices.BinarySearch(bounds, ms)
	h.buckets[i].Add(1)
	h.count.Add(1)
	h.sum.Add(ms)
}

type latencies struct{ kong, upstream, total histogram }

// Registry holds the counted series. The zero value is not usable; call
// New.
type Registry struct {
	mu        sync.RWMutex
	status    map[statusKey]*atomic.Int64
	bandwidth map[bandwidthKey]*bandwidth
	latency   map[routeKey]*latencies

	// instances are the configured prometheus plugins by id, each with
	// its upstream_health_metrics. Without one only the node's gauges are
	// written (Kong's IS_PROMETHEUS_ENABLED); with one asking for it the
	// targets' health is too.
	instMu    sync.Mutex
	instances map[string]bool
	errors    atomic.Int64
}

// New is an empty registry.
func New() *Registry {
	return &Registry{status: map[statusKey]*atomic.Int64{}, bandwidth: map[bandwidthKey]*bandwidth{},
		latency: map[routeKey]*latencies{}, instances: map[string]bool{}}
}

// Track records a configured prometheus plugin and whether it asks for
// upstream health metrics.
func (r *Registry) Track(id string, upstreamHealth bool) {
	r.instMu.Lock()
	r.instances[id] = upstreamHealth
	r.instMu.Unlock()
}

// Forget drops a plugin that is gone or disabled; unknown ids are fine.
func (r *Registry) Forget(id string) {
	r.instMu.Lock()
	delete(r.instances, id)
	r.instMu.Unlock()
}

// ForgetAll drops every tracked plugin, before a whole configuration is
// compiled again.
func (r *Registry) ForgetAll() {
	r.instMu.Lock()
	clear(r.instances)
	r.instMu.Unlock()
}

// enabled says whether a prometheus plugin is configured, and whether
// one asks for upstream health metrics.
func (r *Registry) enabled() (on, upstreamHealth bool) {
	r.instMu.Lock()
	defer r.instMu.Unlock()
	for _, h := range r.instances {
		upstreamHealth = upstreamHealth || h
	}
	return len(r.instances) > 0, upstreamHealth
}

// Observe counts one request.
func (r *Registry) Observe(o *Observation) {
	if o.StatusCode > 0 {
		k := statusKey{service: o.Service, route: o.Route, consumer: o.Consumer, code: o.StatusCode, fromService: o.FromService}
		c := find(r, r.status, k, func() *atomic.Int64 { return new(atomic.Int64) })
		c.Add(1)
	}
	if o.Bandwidth && (o.Ingress > 0 || o.Egress > 0) {
		b := find(r, r.bandwidth, bandwidthKey{o.Service, o.Route, o.Consumer}, func() *bandwidth { return new(bandwidth) })
		if o.Ingress > 0 {
			b.ingress.Add(o.Ingress)
		}
		if o.Egress > 0 {
			b.egress.Add(o.Egress)
		}
	}
	if o.Latencies {
		l := find(r, r.latency, routeKey{o.Service, o.Route}, newLatencies)
		if o.Total >= 0 {
			l.total.observe(UpstreamLatencyBuckets, o.Total.Milliseconds())
		}
		if o.Upstream >= 0 {
			l.upstream.observe(UpstreamLatencyBuckets, o.Upstream.Milliseconds())
		}
		if o.Kong >= 0 {
			l.kong.observe(KongLatencyBuckets, o.Kong.Milliseconds())
		}
	}
}

func newLatencies() *latencies {
	l := &latencies{}
	l.kong.buckets = make([]atomic.Int64, len(KongLatencyBuckets)+1)
	l.upstream.buckets = make([]atomic.Int64, len(UpstreamLatencyBuckets)+1)
	l.total.buckets = make([]atomic.Int64, len(UpstreamLatencyBuckets)+1)
	return l
}

// find is the series of key k, made on first use.
func find[K comparable, V any](r *Registry, m map[K]*V, k K, make func() *V) *V {
	r.mu.RLock()
	v := m[k]
	r.mu.RUnlock()
	if v != nil {
		return v
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if v = m[k]; v == nil {
		v = make()
		m[k] = v
	}
	return v
}

// Target is one address of an upstream's target and its health, one of
// healthchecks_off, healthy, unhealthy, dns_error.
type Target struct {
	Upstream, Target, Address, Health string
}

// Gauges are the node's values read at scrape time.
type Gauges struct {
	NodeID, Version string
	// The proxy's connection counts (Kong's nginx_connections_total
	// states accepted, handled, total, active, reading, writing,
	// waiting; total is the request count).
	Accepted, Handled, Active, Reading, Writing, Waiting, Requests int64
	// DatastoreReachable is nil without a database.
	DatastoreReachable *bool
	// Targets are the upstreams' targets, written when a plugin asks for
	// upstream health metrics.
	Targets []Target
}

// series is one line of the output: its key (name without "kong_" and
// labels, buckets' le zero-padded so they sort in order) and value.
type series struct {
	key   string
	value string
}

// family is a metric's HELP and TYPE.
type family struct{ help, typ string }

var families = map[string]family{
	"bandwidth_bytes":           {"Total bandwidth (ingress/egress) throughput in bytes", "counter"},
	"datastore_reachable":       {"Datastore reachable from Kong, 0 is unreachable", "gauge"},
	"http_requests_total":       {"HTTP status codes per consumer/service/route in Kong", "counter"},
	"kong_latency_ms":           {"Latency added by Kong and enabled plugins for each service/route in Kong", "histogram"},
	"nginx_connections_total":   {"Number of connections by subsystem", "gauge"},
	"nginx_metric_errors_total": {"Number of nginx-lua-prometheus errors", "counter"},
	"nginx_requests_total":      {"Number of requests total", "gauge"},
	"node_info":                 {"Kong Node metadata information", "gauge"},
	"request_latency_ms":        {"Total latency incurred during requests for each service/route in Kong", "histogram"},
	"upstream_latency_ms":       {"Latency added by upstream response for each service/route in Kong", "histogram"},
	"upstream_target_health":    {"Health status of targets of upstream. States = healthchecks_off|healthy|unhealthy|dns_error, value is 1 when state is populated.", "gauge"},
}

// Write writes the metrics in Prometheus's text format.
func (r *Registry) Write(w io.Writer, g Gauges) error {
	on, upstreamHealth := r.enabled()
	list := gaugeSeries(g, upstreamHealth)
	if on {
		list = append(list, r.countedSeries()...)
	}
	slices.SortFunc(list, func(a, b series) int { return strings.Compare(a.key, b.key) })
	bw := bufio.NewWriter(w)
	seen := map[string]bool{}
	for _, s := range list {
		name := familyOf(s.key)
		if !seen[name] {
			seen[name] = true
			if f, ok := families[name]; ok {
				fmt.Fprintf(bw, "# HELP kong_%s %s\n# TYPE kong_%s %s\n", name, f.help, name, f.typ)
			}
		}
		fmt.Fprintf(bw, "kong_%s %s\n", unpadLe(s.key), s.value)
	}
	return bw.Flush()
}

// familyOf is a series' metric name without labels and a histogram's
// suffixes.
func familyOf(key string) string {
	name, _, _ := strings.Cut(key, "{")
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, known := families[base]; known && f.typ == "histogram" {
				return base
			}
		}
	}
	return name
}

func gaugeSeries(g Gauges, upstreamHealth bool) []series {
	var out []series
	add := func(key string, v int64) { out = append(out, series{key, strconv.FormatInt(v, 10)}) }
	for _, c := range []struct {
		state string
		v     int64
	}{{"accepted", g.Accepted}, {"handled", g.Handled}, {"total", g.Requests}, {"active", g.Active},
		{"reading", g.Reading}, {"writing", g.Writing}, {"waiting", g.Waiting}} {
		add("nginx_connections_total"+labels("node_id", g.NodeID, "subsystem", "http", "state", c.state), c.v)
	}
	add("nginx_requests_total"+labels("node_id", g.NodeID, "subsystem", "http"), g.Requests)
	add("node_info"+labels("node_id", g.NodeID, "version", g.Version), 1)
	if g.DatastoreReachable != nil {
		v := int64(0)
		if *g.DatastoreReachable {
			v = 1
		}
		add("datastore_reachable", v)
	}
	if upstreamHealth {
		for _, t := range g.Targets {
			for _, state := range []string{"healthchecks_off", "healthy", "unhealthy", "dns_error"} {
				v := int64(0)
				if t.Health == state {
					v = 1
				}
				add("upstream_target_health"+labels("upstream", t.Upstream, "target", t.Target,
					"address", t.Address, "state", state, "subsystem", "http"), v)
			}
		}
	}
	return out
}

func (r *Registry) countedSeries() []series {
	var out []series
	add := func(key string, v int64) { out = append(out, series{key, strconv.FormatInt(v, 10)}) }
	add("nginx_metric_errors_total", r.errors.Load())
	r.mu.RLock()
	defer r.mu.RUnlock()
	for k, c := range r.status {
		source := "kong"
		if k.fromService {
			source = "service"
		}
		add("http_requests_total"+labels("service", k.service, "route", k.route, "code", strconv.Itoa(k.code),
			"source", source, "workspace", workspace, "consumer", k.consumer), c.Load())
	}
	for k, b := range r.bandwidth {
		for _, d := range []struct {
			dir string
			v   int64
		}{{"ingress", b.ingress.Load()}, {"egress", b.egress.Load()}} {
			if d.v > 0 {
				add("bandwidth_bytes"+labels("service", k.service, "route", k.route, "direction", d.dir,
					"workspace", workspace, "consumer", k.consumer), d.v)
			}
		}
	}
	for k, l := range r.latency {
		lbl := []string{"service", k.service, "route", k.route, "workspace", workspace}
		out = appendHistogram(out, "kong_latency_ms", lbl, KongLatencyBuckets, &l.kong)
		out = appendHistogram(out, "upstream_latency_ms", lbl, UpstreamLatencyBuckets, &l.upstream)
		out = appendHistogram(out, "request_latency_ms", lbl, UpstreamLatencyBuckets, &l.total)
	}
	return out
}

// appendHistogram adds a histogram series' buckets (cumulative, le
// zero-padded to sort), count and sum; nothing before its first
// observation.
func appendHistogram(out []series, name string, lbl []string, bounds []int64, h *histogram) []series {
	count := h.count.Load()
	if count == 0 {
		return out
	}
	base := labels(lbl...)
	prefix := name + "_bucket" + base[:len(base)-1] + ","
	width := len(strconv.FormatInt(bounds[len(bounds)-1], 10))
	var cum int64
	for i, b := range bounds {
		cum += h.buckets[i].Load()
		out = append(out, series{fmt.Sprintf(`%sle="%0*d.0"}`, prefix, width, b), strconv.FormatInt(cum, 10)})
	}
	cum += h.buckets[len(bounds)].Load()
	out = append(out, series{prefix + `le="Inf"}`, strconv.FormatInt(cum, 10)})
	out = append(out, series{name + "_count" + base, strconv.FormatInt(count, 10)})
	out = append(out, series{name + "_sum" + base, strconv.FormatInt(h.sum.Load(), 10)})
	return out
}

// unpadLe writes a bucket's le as Kong does once sorted: "00005.0" as
// "5", "Inf" as "+Inf".
func unpadLe(key string) string {
	i := strings.LastIndex(key, `le="`)
	if i < 0 || !strings.HasSuffix(key, `"}`) {
		return key
	}
	v := key[i+4 : len(key)-2]
	if v == "Inf" {
		return key[:i+4] + `+Inf"}`
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return key
	}
	return key[:i+4] + strconv.FormatFloat(f, 'f', -1, 64) + `"}`
}

// labels renders {k1="v1",k2="v2"} with Prometheus's escapes; "" when
// there are none.
func labels(kv ...string) string {
	if len(kv) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(escaper.Replace(kv[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
