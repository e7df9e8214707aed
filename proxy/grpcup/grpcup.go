// Package grpcup is the proxy's HTTP/2 client for grpc and grpcs
// services: cleartext HTTP/2 with prior knowledge (h2c) for grpc, HTTP/2
// over TLS for grpcs, with connections pooled per upstream address and
// per TLS configuration, kept for the life of the proxy (a snapshot swap
// keeps them). It must not know about routes, plugins or Kong's headers:
// the proxy builds the request and reads the answer.
package grpcup

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// Client sends requests to gRPC upstreams. Safe for concurrent use.
type Client struct {
	h2c *http2.Transport

	mu   sync.Mutex                       // guards tlss
	tlss map[*tls.Config]*http2.Transport // grpcs: one pool per upstream TLS configuration
}

// dialTimeout bounds a connection's opening when the request's context
// has no earlier deadline.
const dialTimeout = 60 * time.Second

// New returns a client with no connection open.
func New() *Client {
	d := &net.Dialer{Timeout: dialTimeout}
	return &Client{
		h2c: &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return d.DialContext(ctx, network, addr) // h2c: no TLS despite the name
			},
		},
		tlss: map[*tls.Config]*http2.Transport{},
	}
}

// RoundTrip sends req: over TLS with conf when conf is not nil (grpcs),
// else as h2c. The request's URL scheme must be http or https to match.
func (c *Client) RoundTrip(req *http.Request, conf *tls.Config) (*http.Response, error) {
	if conf == nil {
		return c.h2c.RoundTrip(req)
	}
	return c.forTLS(conf).RoundTrip(req)
}

func (c *Client) forTLS(conf *tls.Config) *http2.Transport {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tlss[conf]
	if !ok {
		t = &http2.Transport{TLSClientConfig: conf}
		c.tlss[conf] = t
	}
	return t
}

// CloseIdle closes the connections no request uses.
func (c *Client) CloseIdle() {
	c.h2c.CloseIdleConnections()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.tlss {
		t.CloseIdleConnections()
	}
}

// Body is an upstream answer's body as the proxy's response body stream:
// its trailers (grpc-status, grpc-message) are read after its last byte
// and follow it to the client (h2bridge.Trailers).
type Body struct{ Resp *http.Response }

func (b Body) Read(p []byte) (int, error) { return b.Resp.Body.Read(p) }
func (b Body) Close() error               { return b.Resp.Body.Close() }

// Trailers are the answer's trailers, complete once the body is read.
func (b Body) Trailers() http.Header { return b.Resp.Trailer }
