package proxy

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Upstream connections live in a pool owned by the Server, keyed by address
// and connection settings, so keep-alive connections survive snapshot swaps:
// a new snapshot for the same service gets the same HostClient.

// maxUpstreamConns caps connections per upstream address. It is far above
// what a node opens in practice, like nginx's unlimited default; a request
// never waits for a free connection.
const maxUpstreamConns = 16384

type clientKey struct {
	addr      string
	host      string // TLS server name
	tls       bool
	tlsVerify bool
	connect   time.Duration
	read      time.Duration
	write     time.Duration
}

func keyFor(svc *service) clientKey {
	return clientKey{
		addr:      svc.addr,
		host:      svc.host,
		tls:       svc.protocol == "https",
		tlsVerify: svc.tlsVerify,
		connect:   svc.connect,
		read:      svc.read,
		write:     svc.write,
	}
}

type clientPool struct {
	mu      sync.Mutex // guards clients
	clients map[clientKey]*fasthttp.HostClient
}

func newClientPool() *clientPool {
	return &clientPool{clients: make(map[clientKey]*fasthttp.HostClient)}
}

// bind returns the client for each of snap's services, indexed like
// snap.services, and closes the idle connections of clients no longer used.
func (p *clientPool) bind(snap *Snapshot) []*fasthttp.HostClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*fasthttp.HostClient, len(snap.services))
	used := make(map[clientKey]bool, len(snap.services))
	for i, svc := range snap.services {
		if !svc.proxyable {
			continue
		}
		k := keyFor(svc)
		c, ok := p.clients[k]
		if !ok {
			c = newHostClient(k)
			p.clients[k] = c
		}
		out[i], used[k] = c, true
	}
	for k, c := range p.clients {
		if !used[k] {
			// Requests still running on the old snapshot keep working: an
			// evicted client just stops being reused.
			c.CloseIdleConnections()
			delete(p.clients, k)
		}
	}
	return out
}

func (p *clientPool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.clients {
		c.CloseIdleConnections()
	}
}

func newHostClient(k clientKey) *fasthttp.HostClient {
	c := &fasthttp.HostClient{
		Addr:                          k.addr,
		Dial:                          dialer(k.connect, slackFor(min(k.read, k.write))),
		ReadTimeout:                   k.read,
		WriteTimeout:                  k.write,
		MaxConns:                      maxUpstreamConns,
		MaxIdleConnDuration:           60 * time.Second,
		MaxIdemponentCallAttempts:     1, // retries are the service's, done by forward
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: false,
		ReadBufferSize:                16 << 10,
		WriteBufferSize:               16 << 10,
	}
	if k.tls {
		c.IsTLS = true
		c.TLSConfig = &tls.Config{ServerName: k.host, InsecureSkipVerify: !k.tlsVerify} //nolint:gosec // Kong's default: tls_verify off
	}
	return c
}

// dialer opens upstream connections within connect_timeout and marks its
// failures as connect errors, which are always safe to retry. Connections
// keep their read and write deadlines coarsely (see coarseConn).
func dialer(timeout, slack time.Duration) fasthttp.DialFunc {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 60 * time.Second}
	return func(addr string) (net.Conn, error) {
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			return nil, &connectError{err: err}
		}
		return wrapConn(conn, slack), nil
	}
}
