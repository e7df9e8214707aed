package node

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// scrapeMetrics is GET /metrics on the node's Admin API.
func scrapeMetrics(t *testing.T, n *Node) string {
	t.Helper()
	resp, err := http.Get("http://" + n.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; charset=UTF-8" {
		t.Fatalf("GET /metrics: got %d %q, want 200 text/plain; charset=UTF-8", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(body)
}

// TestMetricsEndpoint follows kong/plugins/prometheus/api.lua and
// exporter.lua (3.9): GET /metrics on the Admin API always has the node's
// gauges (connections, datastore_reachable, node_info); once a prometheus
// plugin is configured it has the counted families, with the service's and
// route's names as labels, and with upstream_health_metrics the targets'
// health; deleting the plugin turns the counted families off again.
func TestMetricsEndpoint(t *testing.T) {
	n := startNode(t, testConfig(t, bootstrappedDatabase(t)))
	up := newUpstream(t)
	target := strings.TrimPrefix(up.URL, "http://")
	mustAdmin(t, n, 201, "POST", "/upstreams", `{"name":"u1"}`)
	mustAdmin(t, n, 201, "POST", "/upstreams/u1/targets", fmt.Sprintf(`{"target":%q}`, target))
	mustAdmin(t, n, 201, "POST", "/services", `{"name":"s1","host":"u1"}`)
	mustAdmin(t, n, 201, "POST", "/services/s1/routes", `{"name":"r1","paths":["/r1"]}`)

	before := scrapeMetrics(t, n)
	for _, want := range []string{
		"kong_datastore_reachable 1\n",
		`kong_nginx_connections_total{node_id="` + n.id + `",subsystem="http",state="accepted"} `,
		`kong_node_info{node_id="` + n.id + `",version="` + KongVersion + `"} 1`,
	} {
		if !strings.Contains(before, want) {
			t.Errorf("without a plugin: missing %q in\n%s", want, before)
		}
	}
	if strings.Contains(before, "kong_nginx_metric_errors_total") || strings.Contains(before, "kong_upstream_target_health") {
		t.Errorf("without a plugin: got counted families or target health:\n%s", before)
	}

	plugin := mustAdmin(t, n, 201, "POST", "/plugins", `{"name":"prometheus","config":{"status_code_metrics":true,"upstream_health_metrics":true}}`)
	if status, _, _ := proxyDo(t, n, "GET", "/r1"); status != 200 {
		t.Fatalf("GET /r1: got %d, want 200", status)
	}
	after := scrapeMetrics(t, n)
	for _, want := range []string{
		`kong_http_requests_total{service="s1",route="r1",code="200",source="service",workspace="default",consumer=""} 1`,
		`kong_upstream_target_health{upstream="u1",target="` + target + `",address="` + target + `",state="healthchecks_off",subsystem="http"} 1`,
		`kong_upstream_target_health{upstream="u1",target="` + target + `",address="` + target + `",state="healthy",subsystem="http"} 0`,
		"kong_nginx_metric_errors_total 0\n",
	} {
		if !strings.Contains(after, want) {
			t.Errorf("with the plugin: missing %q in\n%s", want, after)
		}
	}

	mustAdmin(t, n, 204, "DELETE", "/plugins/"+url.PathEscape(plugin["id"].(string)), "")
	gone := scrapeMetrics(t, n)
	if strings.Contains(gone, "kong_http_requests_total") || strings.Contains(gone, "kong_upstream_target_health") {
		t.Errorf("after deleting the plugin: got counted families:\n%s", gone)
	}
}
