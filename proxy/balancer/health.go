package balancer

import (
	"slices"
	"strconv"
)

// limits are the counters that flip an address's health, from either the
// passive or the active record; 0 turns a counter off.
type limits struct {
	successes, tcpFailures, timeouts, httpFailures int
	healthyStatuses, unhealthyStatuses             []int
}

func passiveLimits(p *PassiveChecks) limits {
	return limits{
		successes: p.Healthy.Successes, healthyStatuses: p.Healthy.HTTPStatuses,
		tcpFailures: p.Unhealthy.TCPFailures, timeouts: p.Unhealthy.Timeouts,
		httpFailures: p.Unhealthy.HTTPFailures, unhealthyStatuses: p.Unhealthy.HTTPStatuses,
	}
}

func activeLimits(a *ActiveChecks) limits {
	return limits{
		successes: a.Healthy.Successes, healthyStatuses: a.Healthy.HTTPStatuses,
		tcpFailures: a.Unhealthy.TCPFailures, timeouts: a.Unhealthy.Timeouts,
		httpFailures: a.Unhealthy.HTTPFailures, unhealthyStatuses: a.Unhealthy.HTTPStatuses,
	}
}

func (st *State) reportPassive(a *addrState, p *PassiveChecks, o Outcome, status int) {
	st.report(a, passiveLimits(p), o, status, "passive check")
}

// report counts one outcome as lua-resty-healthcheck does: a status in
// the healthy list is a success, one in the unhealthy list an HTTP
// failure, any other status nothing. A success clears the failure
// counters and a failure the success counter; a counter reaching its
// limit flips the address. Successes of a healthy address and failures
// of an unhealthy one are not counted.
func (st *State) report(a *addrState, lim limits, o Outcome, status int, why string) {
	var counter *int
	limit, toHealthy := 0, false
	a.mu.Lock()
	switch {
	case o == TCPFailure:
		counter, limit = &a.tcpFailures, lim.tcpFailures
	case o == Timeout:
		counter, limit = &a.timeouts, lim.timeouts
	case o == connected || slices.Contains(lim.healthyStatuses, status):
		counter, limit, toHealthy = &a.successes, lim.successes, true
	case slices.Contains(lim.unhealthyStatuses, status):
		counter, limit = &a.httpFailures, lim.httpFailures
	}
	if counter == nil || limit == 0 || a.healthy.Load() == toHealthy {
		a.mu.Unlock()
		return
	}
	if toHealthy {
		a.tcpFailures, a.timeouts, a.httpFailures = 0, 0, 0
	} else {
		a.successes = 0
	}
	*counter++
	flip := *counter >= limit
	a.mu.Unlock()
	if flip {
		st.setHealth(a, toHealthy, why+": "+outcomeText(o, status)+" "+strconv.Itoa(limit)+" times")
	}
}

func outcomeText(o Outcome, status int) string {
	switch o {
	case TCPFailure:
		return "tcp failure"
	case Timeout:
		return "timeout"
	}
	return "status " + strconv.Itoa(status)
}

// Health values of Kong's /upstreams/{u}/health.
const (
	Healthy         = "HEALTHY"
	Unhealthy       = "UNHEALTHY"
	HealthchecksOff = "HEALTHCHECKS_OFF"
	DNSError        = "DNS_ERROR"
)

// AddressHealth is one address in Kong's health report.
type AddressHealth struct {
	IP     string `json:"ip"`
	Port   int    `json:"port"`
	Weight int    `json:"weight"`
	Health string `json:"health"`
}

// TargetHealth is Kong's getTargetStatus of one target: its addresses
// with their health.
type TargetHealth struct {
	Host       string          `json:"host"`
	Port       int             `json:"port"`
	DNS        string          `json:"dns"`
	NodeWeight int             `json:"nodeWeight"`
	Weight     WeightSummary   `json:"weight"`
	Addresses  []AddressHealth `json:"addresses"`
}

// WeightSummary splits a weight into what is available and what is not.
type WeightSummary struct {
	Total       int `json:"total"`
	Unavailable int `json:"unavailable"`
	Available   int `json:"available"`
}

// Summary is a target's health as Kong reports it beside the target:
// HEALTHY if any address is, else UNHEALTHY if any is, else
// HEALTHCHECKS_OFF; DNS_ERROR when it has no address.
func (t TargetHealth) Summary() string {
	if len(t.Addresses) == 0 {
		return DNSError
	}
	out := HealthchecksOff
	for _, a := range t.Addresses {
		switch a.Health {
		case Healthy:
			return Healthy
		case Unhealthy:
			out = Unhealthy
		}
	}
	return out
}

// UpstreamHealth is Kong's get_balancer_health: the balancer as a whole.
type UpstreamHealth struct {
	Health         string `json:"health"`
	BalancerHealth string `json:"balancer_health"`
	ID             string `json:"id"`
	Details        struct {
		Healthy bool           `json:"healthy"`
		Weight  WeightSummary  `json:"weight"`
		Hosts   []TargetHealth `json:"hosts"`
	} `json:"details"`
}

// Health reports an upstream's targets by their stored "host:port", and
// the balancer as a whole; ok is false when the upstream has no balancer
// on this node.
func (r *Registry) Health(upstreamID string) (targets map[string]TargetHealth, whole UpstreamHealth, ok bool) {
	st := r.state(upstreamID)
	if st == nil {
		return nil, whole, false
	}
	l := st.live.Load()
	if l == nil {
		return nil, whole, false
	}
	targets = map[string]TargetHealth{}
	var hosts []TargetHealth
	for _, t := range l.B.Targets {
		th := TargetHealth{Host: t.Host, Port: t.Port, DNS: "A", NodeWeight: t.Weight, Addresses: []AddressHealth{}}
		for i, a := range l.B.Addrs {
			if a.TargetID != t.ID {
				continue
			}
			health := HealthchecksOff
			if l.B.checksOn && a.Weight > 0 {
				health = Unhealthy
				if l.addrs[i].healthy.Load() {
					health = Healthy
				}
			}
			th.Weight.Total += a.Weight
			if l.B.checksOn && health == Unhealthy {
				th.Weight.Unavailable += a.Weight
			}
			if a.SRV {
				th.DNS = "SRV"
			}
			th.Addresses = append(th.Addresses, AddressHealth{IP: a.IP, Port: a.Port, Weight: a.Weight, Health: health})
		}
		th.Weight.Available = th.Weight.Total - th.Weight.Unavailable
		targets[t.Target] = th
		hosts = append(hosts, th)
		whole.Details.Weight.Total += th.Weight.Total
		whole.Details.Weight.Unavailable += th.Weight.Unavailable
	}
	whole.Details.Weight.Available = whole.Details.Weight.Total - whole.Details.Weight.Unavailable
	whole.Details.Hosts = hosts
	whole.Details.Healthy = l.healthy()
	whole.ID = upstreamID
	whole.BalancerHealth = Unhealthy
	if whole.Details.Healthy {
		whole.BalancerHealth = Healthy
	}
	whole.Health = HealthchecksOff
	if l.B.checksOn {
		whole.Health = whole.BalancerHealth
	}
	return targets, whole, true
}
