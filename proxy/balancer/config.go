// Package balancer owns Kong's ring balancer for upstreams: the compiled,
// immutable balancer of one upstream and its targets (the address list and
// the algorithm's structure: round-robin wheel, consistent-hashing
// continuum, least-connections and latency scores), and the state that
// outlives a configuration change: per-address health (passive counters
// from real traffic, active probes), connection counts and latency
// averages, kept per node by upstream id in a Registry. It knows nothing
// of HTTP requests beyond a status code and a hash key: the proxy picks
// the hash input, sends the request and reports the outcome. Kong 3.9's
// kong/runloop/balancer/*.lua and lua-resty-healthcheck are the reference.
package balancer

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"

	"github.com/grapevine-gw/grapevine/entity"
)

// Algorithm is an upstream's balancing algorithm.
type Algorithm uint8

// The algorithms of Kong 3.9's upstream schema.
const (
	RoundRobin Algorithm = iota
	ConsistentHashing
	LeastConnections
	Latency
)

func parseAlgorithm(s string) Algorithm {
	switch s {
	case "consistent-hashing":
		return ConsistentHashing
	case "least-connections":
		return LeastConnections
	case "latency":
		return Latency
	}
	return RoundRobin
}

// HashInput is one of hash_on and hash_fallback with the name it uses
// (a header, cookie, query argument or URI capture name).
type HashInput struct {
	On   string // none, consumer, ip, header, cookie, path, query_arg, uri_capture
	Name string
}

// Checks is an upstream's healthchecks record, Kong's field names.
type Checks struct {
	Active    ActiveChecks  `json:"active"`
	Passive   PassiveChecks `json:"passive"`
	Threshold float64       `json:"threshold"`
}

// ActiveChecks configures the probes (healthchecks.active).
type ActiveChecks struct {
	Type        string              `json:"type"`
	Timeout     float64             `json:"timeout"`
	Concurrency int                 `json:"concurrency"`
	HTTPPath    string              `json:"http_path"`
	HTTPSSNI    *string             `json:"https_sni"`
	HTTPSVerify bool                `json:"https_verify_certificate"`
	Headers     map[string][]string `json:"headers"`
	Healthy     struct {
		Interval     float64 `json:"interval"`
		HTTPStatuses []int   `json:"http_statuses"`
		Successes    int     `json:"successes"`
	} `json:"healthy"`
	Unhealthy struct {
		Interval     float64 `json:"interval"`
		HTTPStatuses []int   `json:"http_statuses"`
		TCPFailures  int     `json:"tcp_failures"`
		Timeouts     int     `json:"timeouts"`
		HTTPFailures int     `json:"http_failures"`
	} `json:"unhealthy"`
}

// PassiveChecks configures what real traffic counts (healthchecks.passive).
type PassiveChecks struct {
	Type    string `json:"type"`
	Healthy struct {
		HTTPStatuses []int `json:"http_statuses"`
		Successes    int   `json:"successes"`
	} `json:"healthy"`
	Unhealthy struct {
		HTTPStatuses []int `json:"http_statuses"`
		TCPFailures  int   `json:"tcp_failures"`
		Timeouts     int   `json:"timeouts"`
		HTTPFailures int   `json:"http_failures"`
	} `json:"unhealthy"`
}

// Enabled is Kong's is_upstream_using_healthcheck: an upstream has a
// health checker only when a probe interval or a passive failure counter
// is set; otherwise every address is HEALTHCHECKS_OFF and always used.
func (c *Checks) Enabled() bool {
	return c.Active.Healthy.Interval != 0 || c.Active.Unhealthy.Interval != 0 ||
		c.Passive.Unhealthy.TCPFailures != 0 || c.Passive.Unhealthy.Timeouts != 0 ||
		c.Passive.Unhealthy.HTTPFailures != 0
}

// activeEnabled reports whether probes run at all.
func (c *Checks) activeEnabled() bool {
	return c.Active.Healthy.Interval > 0 || c.Active.Unhealthy.Interval > 0
}

// parseChecks reads an upstream's healthchecks document; the schema has
// validated it, so a field that does not decode keeps its zero value.
func parseChecks(doc map[string]any) Checks {
	var c Checks
	raw, err := json.Marshal(doc)
	if err == nil {
		_ = json.Unmarshal(raw, &c)
	}
	return c
}

// Upstream is the part of an upstream entity the balancer needs.
type Upstream struct {
	ID         string
	Name       string
	Algorithm  Algorithm
	HashOn     HashInput
	Fallback   HashInput
	CookiePath string
	Slots      int
	Checks     Checks
	HostHeader string // "" unless host_header is set
	UseSRVName bool   // use_srv_name: an SRV record's target name is the Host
}

// UpstreamOf compiles an upstream entity.
func UpstreamOf(e *entity.Upstream) Upstream {
	u := Upstream{
		ID:         e.ID,
		Name:       e.Name,
		Algorithm:  parseAlgorithm(e.Algorithm),
		HashOn:     HashInput{On: e.HashOn},
		Fallback:   HashInput{On: e.HashFallback},
		CookiePath: e.HashOnCookiePath,
		Slots:      e.Slots,
		Checks:     parseChecks(e.Healthchecks),
		UseSRVName: e.UseSRVName,
	}
	u.HashOn.Name = hashName(e.HashOn, e.HashOnHeader, e.HashOnCookie, e.HashOnQueryArg, e.HashOnURICapture)
	u.Fallback.Name = hashName(e.HashFallback, e.HashFallbackHeader, e.HashOnCookie, e.HashFallbackQueryArg, e.HashFallbackURICapture)
	if e.HostHeader != nil {
		u.HostHeader = *e.HostHeader
	}
	if u.CookiePath == "" {
		u.CookiePath = "/"
	}
	return u
}

func hashName(on string, header, cookie, arg, capture *string) string {
	var p *string
	switch on {
	case "header":
		p = header
	case "cookie":
		p = cookie
	case "query_arg":
		p = arg
	case "uri_capture":
		p = capture
	}
	if p == nil {
		return ""
	}
	return *p
}

// Target is one target entity: a host (name or address) and port with
// its weight.
type Target struct {
	ID     string
	Target string // as stored: "host:port"
	Host   string // without brackets for IPv6
	Port   int
	Weight int
}

// TargetOf compiles a target entity; its target is stored normalised
// with a port (entity.FormatTarget).
func TargetOf(e *entity.Target) (Target, error) {
	host, port, err := net.SplitHostPort(e.Target)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: %w", e.Target, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: bad port: %w", e.Target, err)
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String() // Kong stores IPv6 long-hand; dial and report it short
	}
	return Target{ID: e.ID, Target: e.Target, Host: host, Port: p, Weight: e.Weight}, nil
}
