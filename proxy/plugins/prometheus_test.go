package plugins

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy/metrics"
)

// TestPrometheus follows kong/plugins/prometheus/handler.lua and
// exporter.lua (3.9): the log phase counts each request under the
// service's name (or host), the route's name (or id), the status code
// with its source ("service" when the upstream answered, "kong" for the
// gateway's own answer) and, with per_consumer, the consumer's username;
// each family only when its flag is on.
func TestPrometheus(t *testing.T) {
	h := newHarness(t)
	h.env.Metrics = metrics.New()
	h.answer = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			w.WriteHeader(http.StatusBadGateway)
		}
		w.Write([]byte("answer"))
	}
	h.consumer(aliceID, "alice", "")
	h.env.Index.Put(entity.KeyAuthCredential{Credential: cred(aliceKey, aliceID), Key: "secret"})
	h.plugin(`{"name":"prometheus","config":{"status_code_metrics":true,"latency_metrics":true,"bandwidth_metrics":true,"per_consumer":true}}`)
	h.plugin(`{"name":"key-auth","route":{"id":"` + route2ID + `"}}`)

	h.do("GET", "/r", "")
	h.do("GET", "/r?fail=1", "")
	if got := h.do("GET", "/r2", ""); got.status != 401 {
		t.Fatalf("got %d without a key, want 401", got.status)
	}
	h.do("GET", "/r2", "", "apikey: secret")

	var b strings.Builder
	if err := h.env.Metrics.Write(&b, metrics.Gauges{NodeID: "n"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	svc := "127.0.0.1"
	for _, want := range []string{
		`kong_http_requests_total{service="` + svc + `",route="` + routeID + `",code="200",source="service",workspace="default",consumer=""} 1`,
		`kong_http_requests_total{service="` + svc + `",route="` + routeID + `",code="502",source="service",workspace="default",consumer=""} 1`,
		`kong_http_requests_total{service="` + svc + `",route="` + route2ID + `",code="401",source="kong",workspace="default",consumer=""} 1`,
		`kong_http_requests_total{service="` + svc + `",route="` + route2ID + `",code="200",source="service",workspace="default",consumer="alice"} 1`,
		`kong_kong_latency_ms_count{service="` + svc + `",route="` + routeID + `",workspace="default"} 2`,
		`kong_request_latency_ms_count{service="` + svc + `",route="` + route2ID + `",workspace="default"} 2`,
		// The 401 never went upstream: one upstream latency on route2.
		`kong_upstream_latency_ms_count{service="` + svc + `",route="` + route2ID + `",workspace="default"} 1`,
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
	for _, dir := range []string{"ingress", "egress"} {
		prefix := `kong_bandwidth_bytes{service="` + svc + `",route="` + routeID + `",direction="` + dir + `",workspace="default",consumer=""} `
		i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
		if i < 0 {
			t.Errorf("missing %s bandwidth in\n%s", dir, b.String())
			continue
		}
		if n, _ := strconv.Atoi(strings.TrimPrefix(lines[i], prefix)); n < 50 {
			t.Errorf("got %s bytes %d for two requests, want at least 50", dir, n)
		}
	}
}

// TestPrometheusFlagsOff: with the schema's defaults (every flag false)
// a request counts nothing, yet the plugin turns the counted families on
// (nginx_metric_errors_total is written).
func TestPrometheusFlagsOff(t *testing.T) {
	h := newHarness(t)
	h.env.Metrics = metrics.New()
	h.plugin(`{"name":"prometheus"}`)
	h.do("GET", "/r", "")
	var b strings.Builder
	if err := h.env.Metrics.Write(&b, metrics.Gauges{NodeID: "n"}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, absent := range []string{"kong_http_requests_total", "kong_bandwidth_bytes", "kong_kong_latency_ms"} {
		if strings.Contains(out, absent) {
			t.Errorf("got %s with its flag off:\n%s", absent, out)
		}
	}
	if !strings.Contains(out, "kong_nginx_metric_errors_total 0\n") {
		t.Errorf("got no kong_nginx_metric_errors_total with a plugin configured:\n%s", out)
	}
}
