package proxy

import (
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/grapevine-gw/grapevine/proxy/balancer"
	"github.com/valyala/fasthttp"
)

// A service whose host names an upstream goes through that upstream's
// balancer: each try picks an address (retries avoid those that failed),
// sends the request to it with the target's Host, and reports how it went
// to the passive health checks.

// Kong's answers when the balancer has no address to give: on the first
// try through kong.response.error (runloop/balancer/init.lua, handler.lua),
// on a retry through the error handler's default for 503
// (kong/error_handlers.lua, Kong.balancer's ngx.exit).
const (
	msgNoPeer      = "failure to get a peer from the ring-balancer"
	msgUnavailable = "The upstream server is currently unavailable"
)

// balancedState is one balanced request's scratch space, pooled.
type balancedState struct {
	h      balancer.Handle
	key    []byte // the hash key, when built
	cookie []byte // Set-Cookie for a hash cookie the client did not have
}

var balancedPool = sync.Pool{New: func() any { return &balancedState{key: make([]byte, 0, 64)} }}

// balancers binds snap's balancers to their state, reusing the previous
// binding of every slot whose balancer did not change; the caller holds
// s.swapMu.
func (s *Server) bindBalancers(prev *active, snap *Snapshot) []*balancer.Live {
	if len(snap.balancers) == 0 {
		return nil
	}
	out := make([]*balancer.Live, len(snap.balancers))
	changed := false
	for i, b := range snap.balancers {
		switch {
		case b == nil:
		case prev != nil && i < len(prev.snap.balancers) && prev.snap.balancers[i] == b:
			out[i] = prev.lives[i]
			s.resolved(b) // its names stay in use
		default:
			out[i], changed = s.registry.Bind(s.resolved(b)), true
		}
	}
	s.dns.forgetUnused()
	if changed {
		s.addrClients.prune(balancersOf(out))
	}
	return out
}

// resolved is b with the addresses DNS gave for its targets' host names
// (targetdns.go); b itself while none is known.
func (s *Server) resolved(b *balancer.Balancer) *balancer.Balancer {
	names := b.HostNames()
	if len(names) == 0 {
		return b
	}
	var ips map[string][]balancer.Resolved
	for _, name := range names {
		if addrs := s.dns.addresses(name); len(addrs) > 0 {
			if ips == nil {
				ips = map[string][]balancer.Resolved{}
			}
			ips[name] = addrs
		}
	}
	if ips == nil {
		return b
	}
	return balancer.NewResolved(b.Upstream, b.Targets, ips)
}

// rebindResolved rebuilds the balancers whose targets' names now resolve
// to other addresses; targetDNS calls it when an answer changed.
func (s *Server) rebindResolved() {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	cur := s.state.Load()
	lives := slices.Clone(cur.lives)
	changed := false
	for i, b := range cur.snap.balancers {
		if b == nil || lives[i] == nil || len(b.HostNames()) == 0 {
			continue
		}
		r := s.resolved(b)
		if slices.EqualFunc(r.Addrs, lives[i].B.Addrs, func(x, y balancer.Address) bool {
			return x.Dial == y.Dial && x.Weight == y.Weight
		}) {
			continue
		}
		lives[i], changed = s.registry.Bind(r), true
	}
	if !changed {
		return
	}
	s.state.Store(&active{snap: cur.snap, clients: cur.clients, lives: lives})
	s.addrClients.prune(balancersOf(lives))
}

// balancersOf lists the balancers lives are bound to.
func balancersOf(lives []*balancer.Live) []*balancer.Balancer {
	out := make([]*balancer.Balancer, 0, len(lives))
	for _, l := range lives {
		if l != nil {
			out = append(out, l.B)
		}
	}
	return out
}

// registryForget drops the balancer state of upstreams a swap removed.
type registryForget struct{ reg *balancer.Registry }

func (r registryForget) forget(snap *Snapshot) {
	if snap.ids != nil {
		for _, id := range r.reg.IDs() {
			if !snap.ids[id] {
				r.reg.Forget(id)
			}
		}
		return
	}
	for _, id := range snap.removed {
		r.reg.Forget(id)
	}
}

// Balancers is the node's balancer state: health for the Admin API.
func (s *Server) Balancers() *balancer.Registry { return s.registry }

// liveFor is the balancer of svc's upstream in a, nil when svc names none.
func (a *active) liveFor(svc *service) *balancer.Live {
	if svc == nil || svc.upstream == 0 || svc.upstream > len(a.lives) {
		return nil
	}
	return a.lives[svc.upstream-1]
}

// beginBalanced starts a balanced request: its balancer state (the caller
// puts it back in balancedPool) and, for consistent hashing, its key. When
// the service's upstream has no balancer it answers 503 and reports false.
func (s *Server) beginBalanced(ctx *fasthttp.RequestCtx, st *reqState, up *upstreamCall) (*balancedState, []byte, bool) {
	if up.live == nil {
		s.respondError(ctx, st, fasthttp.StatusServiceUnavailable, msgNoPeer)
		return nil, nil, false
	}
	bs := balancedPool.Get().(*balancedState)
	bs.h.Reset()
	bs.cookie = bs.cookie[:0]
	var key []byte
	if up.live.B.Upstream.Algorithm == balancer.ConsistentHashing {
		key = s.hashKey(ctx, st, bs, &up.live.B.Upstream, up)
	}
	return bs, key, true
}

// respondNoAddress answers a request whose balancer has no address left
// for its try: Kong's "no peer" on the first, nginx's 503 after failed
// tries (the last failure logged).
func (s *Server) respondNoAddress(ctx *fasthttp.RequestCtx, st *reqState, svc *service, try int, lastErr error) {
	if try == 0 {
		s.respondError(ctx, st, fasthttp.StatusServiceUnavailable, msgNoPeer)
		return
	}
	s.logUpstreamError(lastErr, svc)
	s.respondNginxError(ctx, st, fasthttp.StatusServiceUnavailable, msgUnavailable)
}

// forwardBalanced is forward for a service behind an upstream: body is
// the request body, read or ready to stream.
func (s *Server) forwardBalanced(ctx *fasthttp.RequestCtx, st *reqState, up upstreamCall, body *requestBody) {
	bs, key, ok := s.beginBalanced(ctx, st, &up)
	if !ok {
		return
	}
	defer balancedPool.Put(bs)
	svc := up.route.svc
	req := &ctx.Request
	var lastErr error
	if st.plugged {
		defer func() { st.x.endTries(ctx.Response.StatusCode(), svc.retries) }()
	}
	for try := 0; ; try++ {
		var picking time.Time
		if st.plugged {
			picking = time.Now()
		}
		addr, err := up.live.Pick(&bs.h, key)
		if err != nil {
			s.respondNoAddress(ctx, st, svc, try, lastErr)
			return
		}
		if st.plugged {
			st.x.addTry(picking, addr)
		}
		up.client = s.addrClients.get(s.pool, svc, addr)
		up.hostHeader = addr.HostHeader(svc.protocol == "https")
		st.head = s.appendUpstreamHead(st.head[:0], ctx, st, up, body.framedLength())
		if st.badHeader {
			up.live.Done(&bs.h, balancer.Answered, 0)
			s.respondBodyError(ctx, st, errBadHeaderName)
			return
		}
		if st.upgrade {
			s.forwardUpgrade(ctx, st, up, body)
			up.live.Done(&bs.h, balancer.Answered, ctx.Response.StatusCode())
			return
		}
		sendBody := body
		if mem := body.inMemory(); len(mem) > 0 && len(st.head)+len(mem) <= maxPending {
			st.head, sendBody = append(st.head, mem...), nil // one write
		}
		sent := time.Now()
		err = up.client.do(sent, st.head, sendBody, req.Header.IsHead(), up.route.streamAnswer, req.Header.Method(), &ctx.Response)
		received := time.Now()
		up.live.Done(&bs.h, outcomeOf(err), ctx.Response.StatusCode())
		if err == nil {
			s.setProxiedResponseHeaders(ctx, st, sent, received)
			if len(bs.cookie) > 0 {
				ctx.Response.Header.Add("Set-Cookie", string(bs.cookie))
			}
			return
		}
		lastErr = err
		if try >= svc.retries || !retryable(err, req.Header.Method()) || !body.replayable() {
			s.respondForwardError(ctx, st, svc, err)
			return
		}
		if st.plugged {
			st.x.failTry(err) // Kong marks a try failed when the next begins
		}
	}
}

// outcomeOf classifies a try for the passive health checks as Kong's
// balancer phase does: a timeout, any other failure as a TCP failure,
// else the answer's status.
func outcomeOf(err error) balancer.Outcome {
	switch {
	case err == nil:
		return balancer.Answered
	case isTimeout(err):
		return balancer.Timeout
	}
	return balancer.TCPFailure
}

// hashKey is Kong's get_value_to_hash: the value of hash_on, else of
// hash_fallback, else empty. A hash cookie the client lacks is made up
// and set on the answer.
func (s *Server) hashKey(ctx *fasthttp.RequestCtx, st *reqState, bs *balancedState, u *balancer.Upstream, up *upstreamCall) []byte {
	for _, in := range [2]balancer.HashInput{u.HashOn, u.Fallback} {
		var v []byte
		switch in.On {
		case "none", "":
			return bs.key[:0]
		case "consumer":
			// Kong's get_value_to_hash: the authenticated consumer's id,
			// else the credential's own id (kong/runloop/balancer/init.lua).
			if st.plugged {
				switch x := &st.x; {
				case x.consumer != nil:
					v = append(bs.key[:0], x.consumer.ID...)
				case x.credential != nil && x.credential.ID != "":
					v = append(bs.key[:0], x.credential.ID...)
				}
			}
		case "ip":
			v = appendRemoteIP(bs.key[:0], ctx.RemoteAddr())
		case "header":
			v = ctx.Request.Header.Peek(in.Name)
		case "cookie":
			v = ctx.Request.Header.Cookie(u.HashOn.Name)
			if v == nil && u.HashOn.On == "cookie" {
				v = append(bs.key[:0], uuid.NewString()...)
				bs.cookie = appendHashCookie(bs.cookie[:0], u.HashOn.Name, v, u.CookiePath)
			}
		case "path":
			v = up.path
		case "query_arg":
			v = s.queryArg(ctx, bs, in.Name)
		case "uri_capture":
			v = uriCapture(up.matcher, up.path, in.Name)
		}
		if v != nil {
			return v
		}
	}
	return bs.key[:0]
}

// uriCapture is the named group name of the route's path regex that
// matched path (Kong's router_matches.uri_captures[name]), nil when the
// route matched by prefix or the group took no part in the match. The
// router does not keep captures (a plain route pays nothing for them):
// the regex runs again, for these upstreams only.
func uriCapture(m *matcher, path []byte, name string) []byte {
	if m == nil {
		return nil
	}
	for _, re := range m.regexes {
		loc := re.FindSubmatchIndex(path)
		if loc == nil {
			continue
		}
		if g := re.SubexpIndex(name); g > 0 && loc[2*g] >= 0 {
			return path[loc[2*g]:loc[2*g+1]]
		}
		return nil
	}
	return nil
}

// queryArg is Kong's get_query_arg: one value as is, several sorted and
// joined with commas.
func (s *Server) queryArg(ctx *fasthttp.RequestCtx, bs *balancedState, name string) []byte {
	values := ctx.QueryArgs().PeekMulti(name)
	switch len(values) {
	case 0:
		return nil
	case 1:
		return values[0]
	}
	sorted := slices.Clone(values)
	slices.SortFunc(sorted, func(a, b []byte) int { return slices.Compare(a, b) })
	v := bs.key[:0]
	for i, x := range sorted {
		if i > 0 {
			v = append(v, ',')
		}
		v = append(v, x...)
	}
	return v
}

// appendHashCookie is Kong's set_cookie value.
func appendHashCookie(dst []byte, name string, value []byte, path string) []byte {
	dst = append(append(append(dst, name...), '='), value...)
	return append(append(append(dst, "; Path="...), path...), "; Same-Site=Lax; HttpOnly"...)
}

// addrClients holds the upstream clients of balanced addresses, by the
// address and the service's connection settings, so their keep-alive
// connections survive swaps; those of addresses no balancer lists any
// more are closed at the swap that drops them.
type addrClients struct {
	mu sync.RWMutex // guards m
	m  map[clientKey]*upstreamClient
}

func (c *addrClients) get(p *clientPool, svc *service, a *balancer.Address) *upstreamClient {
	k := keyFor(svc)
	k.addr, k.host = a.Dial, a.Hostname
	c.mu.RLock()
	cl := c.m[k]
	c.mu.RUnlock()
	if cl != nil {
		return cl
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl = c.m[k]; cl == nil {
		if c.m == nil {
			c.m = map[clientKey]*upstreamClient{}
		}
		cl = p.newClient(k)
		c.m[k] = cl
	}
	return cl
}

// prune closes the clients of addresses none of balancers lists.
func (c *addrClients) prune(balancers []*balancer.Balancer) {
	used := map[string]bool{}
	for _, b := range balancers {
		if b == nil {
			continue
		}
		for _, a := range b.Addrs {
			used[a.Dial] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, cl := range c.m {
		if !used[k.addr] {
			cl.closeIdle()
			delete(c.m, k)
		}
	}
}

func (c *addrClients) closeIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.m {
		cl.closeIdle()
	}
}
