package admin

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/grapevine-gw/grapevine/entity"
)

// Kong's upstream health endpoints (kong/api/routes/upstreams.lua): the
// health of an upstream's targets as this node's balancer sees it, and
// setting a target's health by hand, which reaches every node.

// healthPaths are the paths /endpoints lists for these endpoints, as
// Kong names them.
var healthPaths = []string{
	"/upstreams/{upstreams}/health",
	"/upstreams/{upstreams}/targets/{targets}/healthy",
	"/upstreams/{upstreams}/targets/{targets}/unhealthy",
	"/upstreams/{upstreams}/targets/{targets}/{address}/healthy",
	"/upstreams/{upstreams}/targets/{targets}/{address}/unhealthy",
}

// Health is this node's balancer health, given by the node.
type Health interface {
	// Targets reports the upstream's targets by their stored "host:port";
	// ok is false when the upstream has no balancer here.
	Targets(upstreamID string) (targets map[string]TargetHealth, ok bool)
	// Balancer reports the balancer as a whole (Kong's
	// get_balancer_health), JSON-ready.
	Balancer(upstreamID string) (any, bool)
	// SetHealth sets the health of a target's addresses (all when ip is
	// "") on this node and every other; an error is Kong's 400 message.
	SetHealth(upstreamID, hostname, ip string, port int, healthy bool) error
}

// TargetHealth is one target's health: Kong's summary and its details
// (getTargetStatus, JSON-ready).
type TargetHealth struct {
	Health string
	Data   any
}

// matchHealth serves /upstreams/{u}/health and the targets' healthy and
// unhealthy endpoints; nil for any other path.
func (s *Server) matchHealth(segs []string) methods {
	if s.cfg.Health == nil || len(segs) < 3 || segs[0] != "upstreams" {
		return nil
	}
	n := &nesting{parent: s.kinds.byTable["upstreams"], parentRef: segs[1], field: "upstream"}
	if len(segs) == 3 && segs[2] == "health" {
		return methods{http.MethodGet: func(w http.ResponseWriter, r *http.Request) { s.getHealth(w, r, n) }}
	}
	last := segs[len(segs)-1]
	if segs[2] != "targets" || (len(segs) != 5 && len(segs) != 6) || last != "healthy" && last != "unhealthy" {
		return nil
	}
	address := ""
	if len(segs) == 6 {
		address = segs[4]
	}
	put := func(w http.ResponseWriter, r *http.Request) {
		s.putHealth(w, r, n, segs[3], address, last == "healthy")
	}
	return methods{http.MethodPut: put}
}

// getHealth is GET /upstreams/{u}/health: the targets as
// /upstreams/{u}/targets lists them, each with its health and details,
// and this node's id; with ?balancer_health=1 the balancer's own health.
func (s *Server) getHealth(w http.ResponseWriter, r *http.Request, n *nesting) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	parentID, err := s.lookupParent(ctx, n)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	if q.Get("balancer_health") == "1" {
		whole, _ := s.cfg.Health.Balancer(parentID)
		writeJSON(w, http.StatusOK, map[string]any{"data": whole, "next": nil, "node_id": s.cfg.NodeID})
		return
	}
	page, start, err := parseTargetPage(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	all, err := s.allTargets(ctx, s.kinds.byTable["targets"], n, page)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	health, known := s.cfg.Health.Targets(parentID)
	end := min(start+page.Size, len(all))
	data := make([]map[string]any, 0, end-min(start, end))
	for _, t := range all[min(start, end):end] {
		data = append(data, withHealth(t.Doc, health, known))
	}
	body := map[string]any{"data": data, "next": nil, "node_id": s.cfg.NodeID}
	if end < len(all) {
		offset := strconv.Itoa(end)
		body["offset"] = offset
		body["next"] = "/upstreams/" + n.parentRef + "/health?offset=" + url.QueryEscape(offset)
	}
	writeJSON(w, http.StatusOK, body)
}

// withHealth is Kong's page_for_upstream_with_health for one target: a
// target the balancer lacks has DNS_ERROR.
func withHealth(doc json.RawMessage, health map[string]TargetHealth, known bool) map[string]any {
	var t map[string]any
	_ = json.Unmarshal(doc, &t) // stored documents are valid JSON objects
	if !known {
		return t
	}
	name, _ := t["target"].(string)
	if h, ok := health[name]; ok {
		t["health"], t["data"] = h.Health, h.Data
	} else {
		t["health"] = "DNS_ERROR"
	}
	return t
}

// putHealth is PUT /upstreams/{u}/targets/{t}[/{address}]/healthy|unhealthy
// (Kong's set_target_health): 204, 404 for an unknown upstream or target,
// 400 with the balancer's message when it cannot be set.
func (s *Server) putHealth(w http.ResponseWriter, r *http.Request, n *nesting, ref, address string, healthy bool) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	row, err := s.lookupNested(ctx, s.kinds.byTable["targets"], ref, n)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var t entity.Target
	if err := json.Unmarshal(row.Doc, &t); err != nil {
		s.writeError(w, r, err)
		return
	}
	host, portText, err := net.SplitHostPort(t.Target)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	port, _ := strconv.Atoi(portText)
	ip := ""
	if address != "" {
		if ip, port, err = splitAddress(address); err != nil {
			writeMessage(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if err := s.cfg.Health.SetHealth(row.Foreign["upstream"], normalizeIP(host), ip, port, healthy); err != nil {
		writeMessage(w, http.StatusBadRequest, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// splitAddress reads a per-address path's "ip[:port]", Kong's default
// port 8000 when none is given.
func splitAddress(addr string) (string, int, error) {
	if h, p, err := net.SplitHostPort(addr); err == nil {
		port, err := strconv.Atoi(p)
		if err != nil {
			return "", 0, errors.New("invalid port: " + p)
		}
		return normalizeIP(h), port, nil
	}
	return normalizeIP(strings.Trim(addr, "[]")), entity.TargetDefaultPort, nil
}

// normalizeIP writes an IP address as the balancer does (IPv6 short).
func normalizeIP(host string) string {
	if ip := net.ParseIP(host); ip != nil {
		return ip.String()
	}
	return host
}
