package plugins

import (
	"encoding/json"
	"net"
	"os"
	"reflect"
	"strconv"
	"testing"
)

// TestRequestTerminationEcho: with echo, Kong answers with the request
// as its PDK reads it (kong/plugins/request-termination/handler.lua:
// message, kong.node_id/worker_pid/hostname, request.scheme/host/port/
// headers/query/body/raw_body/method/path/uri_captures, matched_route,
// matched_service), as JSON (kong.response.exit with a table); the
// upstream is not called. uri_captures is kong/pdk/request.lua's
// {unnamed, named} of the router's captures (kong/router/atc.lua).
func TestRequestTerminationEcho(t *testing.T) {
	h := newHarness(t)
	h.env.NodeID, h.env.Hostname = "5f1e4a0c-0000-4000-8000-00000000aaaa", "gw1"
	h.plugin(`{"name":"request-termination","config":{"status_code":404,"echo":true}}`)
	_, portText, _ := net.SplitHostPort(h.srv.Addr().String())
	port, _ := strconv.Atoi(portText)

	resp := h.do("POST", "/cap/alice/42?a=1&a=2&flag&e=", `{"k":["v"]}`,
		"Content-Type: application/json", "X-Multi: one", "X-Multi: two", "Host: Echo.Test")
	if _, called := h.last(); called {
		t.Error("got the upstream called, want the request answered by the gateway")
	}
	if resp.status != 404 || resp.header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("got %d %q, want 404 JSON", resp.status, resp.header.Get("Content-Type"))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(resp.body), &got); err != nil {
		t.Fatalf("body %s: %v", resp.body, err)
	}
	req, _ := got["request"].(map[string]any)
	hdrs, _ := req["headers"].(map[string]any)
	route, _ := got["matched_route"].(map[string]any)
	svc, _ := got["matched_service"].(map[string]any)
	tests := []struct {
		name      string
		got, want any
	}{
		{"message", got["message"], "Not found"},
		{"kong", got["kong"], map[string]any{"node_id": h.env.NodeID, "hostname": "gw1", "worker_pid": float64(os.Getpid())}},
		{"scheme", req["scheme"], "http"},
		{"host", req["host"], "echo.test"},
		{"port", req["port"], float64(port)},
		{"method", req["method"], "POST"},
		{"path", req["path"], "/cap/alice/42"},
		{"query", req["query"], map[string]any{"a": []any{"1", "2"}, "flag": true, "e": ""}},
		{"repeated header", hdrs["x-multi"], []any{"one", "two"}},
		{"raw_body", req["raw_body"], `{"k":["v"]}`},
		{"body", req["body"], map[string]any{"k": []any{"v"}}},
		{"uri_captures", req["uri_captures"], map[string]any{
			"unnamed": []any{"alice", "42"}, "named": map[string]any{"user": "alice"}}},
		{"matched_route id", route["id"], route3ID},
		{"matched_route paths", route["paths"], []any{`~/cap/(?<user>[a-z]+)/(\d+)$`}},
		{"matched_route without nulls", hasKey(route, "name"), false},
		{"matched_service", svc["id"], serviceID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("got %#v, want %#v", tc.got, tc.want)
			}
		})
	}
	t.Run("prefix route: empty captures, no body", func(t *testing.T) {
		resp := h.do("GET", "/r", "")
		var got struct {
			Request map[string]any `json:"request"`
		}
		_ = json.Unmarshal([]byte(resp.body), &got)
		want := map[string]any{"unnamed": []any{}, "named": map[string]any{}}
		if !reflect.DeepEqual(got.Request["uri_captures"], want) || hasKey(got.Request, "body") || got.Request["raw_body"] != "" {
			t.Errorf("got %s, want empty captures, raw_body \"\" and no body", resp.body)
		}
	})
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }
