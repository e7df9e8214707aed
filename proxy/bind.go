package proxy

// Binding a snapshot's services to upstream clients costs O(change) too: a
// service slot whose compiled service is the same pointer as in the
// previous snapshot (the Builder keeps unchanged services) keeps its
// client, and only changed slots look the pool up. The Server counts how
// many slots use each client, so a client is dropped (its idle connections
// closed) when the last service using it goes, as clientPool.bind does for
// a full binding.

// bindClients returns the clients for snap's services, indexed like
// snap.services. refs counts the slots per client key; the caller holds
// s.swapMu.
func (s *Server) bindClients(prev *active, snap *Snapshot) []*upstreamClient {
	if prev == nil || s.clientRefs == nil {
		return s.bindAll(snap)
	}
	out := make([]*upstreamClient, len(snap.services))
	for i, svc := range snap.services {
		if i < len(prev.snap.services) && prev.snap.services[i] == svc {
			out[i] = prev.clients[i]
			continue
		}
		if svc.proxyable {
			k := keyFor(svc)
			out[i] = s.pool.acquire(k)
			s.clientRefs[k]++
		}
	}
	for i, old := range prev.snap.services {
		if i < len(snap.services) && snap.services[i] == old || !old.proxyable {
			continue
		}
		k := keyFor(old)
		if s.clientRefs[k]--; s.clientRefs[k] <= 0 {
			delete(s.clientRefs, k)
			s.pool.release(k)
		}
	}
	return out
}

// bindAll binds every service and counts the slots per client afresh.
func (s *Server) bindAll(snap *Snapshot) []*upstreamClient {
	s.clientRefs = make(map[clientKey]int, len(snap.services))
	for _, svc := range snap.services {
		if svc.proxyable {
			s.clientRefs[keyFor(svc)]++
		}
	}
	return s.pool.bind(snap)
}

// acquire returns the pool's client for k, made if there is none.
func (p *clientPool) acquire(k clientKey) *upstreamClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clients[k]
	if !ok {
		c = p.newClient(k)
		p.clients[k] = c
	}
	return c
}

// release drops the client for k: requests still running keep using it,
// its idle connections close and it is no longer handed out.
func (p *clientPool) release(k clientKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[k]; ok {
		c.closeIdle()
		delete(p.clients, k)
	}
}
