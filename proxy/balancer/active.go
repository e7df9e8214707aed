package balancer

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// checker probes one upstream's addresses: those healthy every
// healthy.interval, those unhealthy every unhealthy.interval (either 0:
// not probed), at most concurrency at once, as lua-resty-healthcheck's
// active checks do. It follows the State's newest binding, so a target
// added joins the next round.
type checker struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (st *State) restartCheckerLocked(b *Balancer) {
	st.stopCheckerLocked()
	if !b.checksOn || !b.Upstream.Checks.activeEnabled() {
		return
	}
	ctx, cancel := context.WithCancel(st.reg.ctx)
	c := &checker{cancel: cancel, done: make(chan struct{})}
	st.checker = c
	active := b.Upstream.Checks.Active
	st.reg.wg.Add(1)
	go func() {
		defer st.reg.wg.Done()
		defer close(c.done)
		defer func() {
			if v := recover(); v != nil {
				st.reg.log.Error().Interface("panic", v).Str("upstream", b.Upstream.Name).Msg("active health checker panicked; probes stop until the upstream changes")
			}
		}()
		st.runChecks(ctx, &active)
	}()
}

func (st *State) stopCheckerLocked() {
	if st.checker == nil {
		return
	}
	st.checker.cancel()
	<-st.checker.done
	st.checker = nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func (st *State) runChecks(ctx context.Context, a *ActiveChecks) {
	var healthyTick, unhealthyTick <-chan time.Time
	if a.Healthy.Interval > 0 {
		t := time.NewTicker(seconds(a.Healthy.Interval))
		defer t.Stop()
		healthyTick = t.C
	}
	if a.Unhealthy.Interval > 0 {
		t := time.NewTicker(seconds(a.Unhealthy.Interval))
		defer t.Stop()
		unhealthyTick = t.C
	}
	p := newProber(a)
	defer p.client.CloseIdleConnections()
	for {
		select {
		case <-ctx.Done():
			return
		case <-healthyTick:
			st.probeRound(ctx, p, true)
		case <-unhealthyTick:
			st.probeRound(ctx, p, false)
		}
	}
}

// probeRound probes the addresses whose health is healthy.
func (st *State) probeRound(ctx context.Context, p *prober, healthy bool) {
	l := st.live.Load()
	if l == nil {
		return
	}
	sem := make(chan struct{}, max(p.cfg.Concurrency, 1))
	var wg sync.WaitGroup
	for i := range l.B.Addrs {
		addr, as := &l.B.Addrs[i], l.addrs[i]
		if addr.Weight == 0 || as.healthy.Load() != healthy {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o, status := p.probe(ctx, addr)
			if ctx.Err() == nil {
				st.report(as, activeLimits(p.cfg), o, status, "active check")
			}
		}()
	}
	wg.Wait()
}

// prober sends one kind of probe.
type prober struct {
	cfg    *ActiveChecks
	client *http.Client
}

func newProber(a *ActiveChecks) *prober {
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	if a.Type == "https" {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: !a.HTTPSVerify} //nolint:gosec // https_verify_certificate false asks for it
		if a.HTTPSSNI != nil {
			tr.TLSClientConfig.ServerName = *a.HTTPSSNI
		}
	}
	return &prober{cfg: a, client: &http.Client{
		Transport: tr,
		Timeout:   seconds(a.Timeout),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a 302 is a status to judge, not to follow
		},
	}}
}

// probe checks one address: a TCP connection for "tcp", else a GET of
// http_path with the target's Host and the configured headers; a status
// the lists do not name counts for nothing.
func (p *prober) probe(ctx context.Context, a *Address) (Outcome, int) {
	timeout := seconds(p.cfg.Timeout)
	if p.cfg.Type == "tcp" {
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", a.Dial)
		if err != nil {
			return failureOf(err), 0
		}
		conn.Close()
		return connected, 0
	}
	scheme := "http"
	if p.cfg.Type == "https" {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+a.Dial+p.cfg.HTTPPath, nil)
	if err != nil {
		return TCPFailure, 0
	}
	req.Host = string(a.HostHeader(scheme == "https"))
	for k, vs := range p.cfg.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return failureOf(err), 0
	}
	resp.Body.Close()
	return Answered, resp.StatusCode
}

func failureOf(err error) Outcome {
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return Timeout
	}
	return TCPFailure
}
