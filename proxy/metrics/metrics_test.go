package metrics

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// The expected names, labels, buckets and order are Kong 3.9's
// kong/plugins/prometheus/exporter.lua (init, log, metric_data) and
// prometheus.lua (metric_data: keys sorted, HELP and TYPE once per
// family, le zero-padded to sort then written without padding, "+Inf").

func scrape(t *testing.T, r *Registry, g Gauges) []string {
	t.Helper()
	var b strings.Builder
	if err := r.Write(&b, g); err != nil {
		t.Fatalf("write: %v", err)
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

func TestWriteWithoutPluginHasOnlyGauges(t *testing.T) {
	r := New()
	r.Observe(&Observation{Service: "s", Route: "r", StatusCode: 200})
	reachable := true
	lines := scrape(t, r, Gauges{NodeID: "n1", Version: "3.9.1", Accepted: 3, Handled: 3, Active: 1, Requests: 7,
		DatastoreReachable: &reachable})
	want := []string{
		"# HELP kong_datastore_reachable Datastore reachable from Kong, 0 is unreachable",
		"# TYPE kong_datastore_reachable gauge",
		"kong_datastore_reachable 1",
		"# HELP kong_nginx_connections_total Number of connections by subsystem",
		"# TYPE kong_nginx_connections_total gauge",
		`kong_nginx_connections_total{node_id="n1",subsystem="http",state="accepted"} 3`,
		`kong_nginx_connections_total{node_id="n1",subsystem="http",state="active"} 1`,
		`kong_nginx_connections_total{node_id="n1",subsystem="http",state="handled"} 3`,
		`kong_nginx_connections_total{node_id="n1",subsystem="http",state="reading"} 0`,
		`kong_nginx_connections_total{node_id="n1",subsystem="http",state="total"} 7`,
		`kong_nginx_connections_total{node_id="n1",subsystem="http",state="waiting"} 0`,
		`kong_nginx_connections_total{node_id="n1",subsystem="http",state="writing"} 0`,
		"# HELP kong_nginx_requests_total Number of requests total",
		"# TYPE kong_nginx_requests_total gauge",
		`kong_nginx_requests_total{node_id="n1",subsystem="http"} 7`,
		"# HELP kong_node_info Kong Node metadata information",
		"# TYPE kong_node_info gauge",
		`kong_node_info{node_id="n1",version="3.9.1"} 1`,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestWriteCountedSeries(t *testing.T) {
	r := New()
	r.Track("p1", false)
	base := Observation{Service: "svc", Route: "rt", Consumer: "alice", StatusCode: 200, FromService: true,
		Bandwidth: true, Ingress: 100, Egress: 250, Latencies: true,
		Kong: 3 * time.Millisecond, Upstream: 40 * time.Millisecond, Total: 43 * time.Millisecond}
	r.Observe(&base)
	second := base
	second.StatusCode, second.FromService, second.Upstream = 401, false, -1
	second.Kong, second.Total, second.Egress = 12*time.Millisecond, 12*time.Millisecond, 0
	r.Observe(&second)
	lines := scrape(t, r, Gauges{NodeID: "n1"})
	for _, want := range []string{
		"# TYPE kong_http_requests_total counter",
		`kong_http_requests_total{service="svc",route="rt",code="200",source="service",workspace="default",consumer="alice"} 1`,
		`kong_http_requests_total{service="svc",route="rt",code="401",source="kong",workspace="default",consumer="alice"} 1`,
		"# TYPE kong_bandwidth_bytes counter",
		`kong_bandwidth_bytes{service="svc",route="rt",direction="egress",workspace="default",consumer="alice"} 250`,
		`kong_bandwidth_bytes{service="svc",route="rt",direction="ingress",workspace="default",consumer="alice"} 200`,
		"# TYPE kong_kong_latency_ms histogram",
		`kong_kong_latency_ms_bucket{service="svc",route="rt",workspace="default",le="2"} 0`,
		`kong_kong_latency_ms_bucket{service="svc",route="rt",workspace="default",le="5"} 1`,
		`kong_kong_latency_ms_bucket{service="svc",route="rt",workspace="default",le="15"} 2`,
		`kong_kong_latency_ms_bucket{service="svc",route="rt",workspace="default",le="+Inf"} 2`,
		`kong_kong_latency_ms_count{service="svc",route="rt",workspace="default"} 2`,
		`kong_kong_latency_ms_sum{service="svc",route="rt",workspace="default"} 15`,
		`kong_upstream_latency_ms_bucket{service="svc",route="rt",workspace="default",le="25"} 0`,
		`kong_upstream_latency_ms_bucket{service="svc",route="rt",workspace="default",le="50"} 1`,
		`kong_upstream_latency_ms_count{service="svc",route="rt",workspace="default"} 1`,
		`kong_request_latency_ms_bucket{service="svc",route="rt",workspace="default",le="25"} 1`,
		`kong_request_latency_ms_count{service="svc",route="rt",workspace="default"} 2`,
		"kong_nginx_metric_errors_total 0",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("missing %q in\n%s", want, strings.Join(lines, "\n"))
		}
	}
	// Buckets in numeric order (not "10" before "2"), then count and sum.
	var les []string
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, `kong_kong_latency_ms_bucket{service="svc",route="rt",workspace="default",le="`); ok {
			le, _, _ := strings.Cut(rest, `"`)
			les = append(les, le)
		}
	}
	wantLes := []string{"1", "2", "5", "7", "10", "15", "20", "30", "50", "75", "100", "200", "500", "750", "1000", "3000", "6000", "+Inf"}
	if !slices.Equal(les, wantLes) {
		t.Errorf("got buckets %v, want %v", les, wantLes)
	}
}

func TestUpstreamHealthOnlyWhenAsked(t *testing.T) {
	g := Gauges{NodeID: "n1", Targets: []Target{{Upstream: "up", Target: "a:80", Address: "10.0.0.1:80", Health: "healthy"}}}
	tests := []struct {
		name string
		ask  bool
		want int
	}{
		{"off", false, 0},
		{"on", true, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New()
			r.Track("p1", tc.ask)
			got := 0
			for _, l := range scrape(t, r, g) {
				if strings.HasPrefix(l, "kong_upstream_target_health{") {
					got++
				}
			}
			if got != tc.want {
				t.Errorf("got %d upstream_target_health series, want %d", got, tc.want)
			}
			if tc.ask {
				want := `kong_upstream_target_health{upstream="up",target="a:80",address="10.0.0.1:80",state="healthy",subsystem="http"} 1`
				if !slices.Contains(scrape(t, r, g), want) {
					t.Errorf("missing %q", want)
				}
			}
		})
	}
}

func TestForgetTurnsCountedSeriesOff(t *testing.T) {
	r := New()
	r.Track("p1", false)
	r.Observe(&Observation{Service: "s", Route: "r", StatusCode: 200})
	r.Forget("p1")
	for _, l := range scrape(t, r, Gauges{}) {
		if strings.HasPrefix(l, "kong_http_requests_total") || strings.HasPrefix(l, "kong_nginx_metric_errors_total") {
			t.Errorf("got %q after the last plugin was forgotten, want only gauges", l)
		}
	}
}

func TestLabelEscapes(t *testing.T) {
	got := labels("route", "a\"b\\c\nd")
	want := `{route="a\"b\\c\nd"}`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestObserveKnownSeriesAllocatesNothing(t *testing.T) {
	r := New()
	o := Observation{Service: "s", Route: "r", Consumer: "c", StatusCode: 200, FromService: true,
		Bandwidth: true, Ingress: 10, Egress: 20, Latencies: true, Kong: time.Millisecond, Upstream: time.Millisecond, Total: 2 * time.Millisecond}
	r.Observe(&o)
	if n := testing.AllocsPerRun(100, func() { r.Observe(&o) }); n != 0 {
		t.Errorf("got %v allocs per Observe, want 0", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	r := New()
	o := Observation{Service: "s", Route: "r", StatusCode: 200, Latencies: true, Bandwidth: true, Ingress: 1, Egress: 1}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Observe(&o)
		}
	})
}
