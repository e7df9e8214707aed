package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/proxy/kongheaders"
	"github.com/grapevine-gw/grapevine/proxy/tlsconf"
)

// Config is the proxy's configuration. Build it from DefaultConfig, change
// what you need, and hand it to New; it is never mutated after Start.
type Config struct {
	// Listen is kong.conf's proxy_listen: addresses separated by commas,
	// each with Kong's flags. Default "0.0.0.0:8000". "ssl" serves TLS
	// there, "http2" offers HTTP/2 by ALPN beside it; nginx-only flags
	// (reuseport, backlog=N, deferred, bind) change nothing.
	Listen string
	// TLS is the protocol versions and ciphers of the ssl listeners
	// (ssl_cipher_suite, ssl_ciphers, ssl_protocols). Zero: Kong's
	// default, "intermediate".
	TLS tlsconf.Policy
	// Certificates are ssl_cert and ssl_cert_key: served on ssl listeners
	// to clients whose server name no SNI entity names. None: one is
	// generated at Start, as Kong does.
	Certificates []tls.Certificate
	// Version appears in Via and Server as "grapevine/<Version>". Default "dev".
	Version string
	// LatencyHeaders picks the latency header family: "kong" (default:
	// X-Kong-Upstream-Latency, X-Kong-Proxy-Latency, X-Kong-Response-Latency)
	// or "grapevine" (X-Grapevine-…).
	LatencyHeaders string
	// ClientHeaderTimeout bounds reading a request's line and headers, from
	// the connection's first byte (nginx's client_header_timeout). Default 60s.
	ClientHeaderTimeout time.Duration
	// ClientBodyTimeout bounds the wait between two reads of a request body
	// (nginx's client_body_timeout). Default 60s.
	ClientBodyTimeout time.Duration
	// SendTimeout bounds the wait between two writes to a client (nginx's
	// send_timeout). Default 60s.
	SendTimeout time.Duration
	// MaxBodySize is the largest request body accepted, in bytes; larger
	// ones get 413 (nginx's client_max_body_size). Default (and any
	// negative value): unlimited, as Kong's default 0 is.
	MaxBodySize int64
	// BodyBufferSize is how much of a buffered request body is held in
	// memory; the rest goes to a temporary file in BodyTempDir (nginx's
	// client_body_buffer_size). Default 8 KiB, Kong's.
	BodyBufferSize int
	// BodyTempDir is where request bodies larger than BodyBufferSize are
	// buffered; the files are unlinked as soon as they are created.
	// Default "": the system's temporary directory ($TMPDIR).
	BodyTempDir string
	// MaxConnections caps open client connections (nginx's
	// worker_connections); at the cap the longest idle ones are closed.
	// Default 0: no cap.
	MaxConnections int
	// LargeHeaderBuffers and LargeHeaderBufferSize are nginx's
	// large_client_header_buffers: a request line longer than one buffer
	// gets 414, a header line longer than one 400, and all headers must fit
	// in the buffers together. Default 4 of 8 KiB.
	LargeHeaderBuffers    int
	LargeHeaderBufferSize int
	// DNSResolvers are kong.conf's dns_resolver: the name servers
	// ("ip:port") upstream hosts are looked up with. Default none: the
	// system's resolver.
	DNSResolvers []string
	// DNS is how balancer targets named by a host name are resolved
	// (kong.conf's dns_hostsfile, dns_stale_ttl, dns_not_found_ttl,
	// dns_error_ttl). Default: Kong's (DefaultDNSConfig).
	DNS DNSConfig
	// ErrorDefaultType is kong.conf's error_default_type: the body type of
	// errors nginx raises when the request has neither Accept nor
	// Content-Type. Default "text/plain"; also application/json,
	// application/xml, text/html.
	ErrorDefaultType string
	// Bind opens a listening socket for an address of Listen; nil binds a
	// new one. A node given its predecessor's sockets (an in-place restart)
	// takes them over through it.
	Bind func(ctx context.Context, addr string) (net.Listener, error)
	// Headers are Kong's own headers sent to clients (kong.conf's
	// headers); UpstreamHeaders those sent upstream (headers_upstream:
	// only kongheaders.RequestID). DefaultConfig has Kong's defaults; zero sends
	// none.
	Headers         kongheaders.Set
	UpstreamHeaders kongheaders.Set
	// Logger receives proxy events. Access logs are written at debug level
	// only; the zero value discards everything.
	Logger zerolog.Logger
}

// DefaultConfig returns Kong's defaults.
func DefaultConfig() Config {
	return Config{
		Listen:                "0.0.0.0:8000",
		Version:               "dev",
		LatencyHeaders:        "kong",
		ClientHeaderTimeout:   60 * time.Second,
		ClientBodyTimeout:     60 * time.Second,
		SendTimeout:           60 * time.Second,
		MaxBodySize:           -1,
		Headers:               kongheaders.Default,
		DNS:                   DefaultDNSConfig(),
		UpstreamHeaders:       kongheaders.RequestID,
		BodyBufferSize:        8 << 10,
		ErrorDefaultType:      "text/plain",
		LargeHeaderBuffers:    4,
		LargeHeaderBufferSize: 8 << 10,
		Logger:                zerolog.Nop(),
	}
}

// Validate checks the configuration and fills empty fields with defaults.
func (c *Config) Validate() error {
	def := DefaultConfig()
	if strings.TrimSpace(c.Listen) == "" {
		c.Listen = def.Listen
	}
	if c.TLS.MinVersion == 0 {
		c.TLS, _ = tlsconf.ParsePolicy("intermediate", "", "")
	}
	if c.Version == "" {
		c.Version = def.Version
	}
	if c.ClientHeaderTimeout <= 0 {
		c.ClientHeaderTimeout = def.ClientHeaderTimeout
	}
	if c.ClientBodyTimeout <= 0 {
		c.ClientBodyTimeout = def.ClientBodyTimeout
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = def.SendTimeout
	}
	if c.MaxBodySize == 0 {
		c.MaxBodySize = def.MaxBodySize
	}
	if c.BodyBufferSize <= 0 {
		c.BodyBufferSize = def.BodyBufferSize
	}
	if c.LargeHeaderBuffers <= 0 || c.LargeHeaderBufferSize <= 0 {
		c.LargeHeaderBuffers, c.LargeHeaderBufferSize = def.LargeHeaderBuffers, def.LargeHeaderBufferSize
	}
	if c.ErrorDefaultType == "" {
		c.ErrorDefaultType = def.ErrorDefaultType
	}
	if _, ok := parseBodyType(c.ErrorDefaultType); !ok {
		return fmt.Errorf("proxy config: error_default_type %q: want text/plain, application/json, application/xml or text/html", c.ErrorDefaultType)
	}
	switch c.LatencyHeaders {
	case "":
		c.LatencyHeaders = def.LatencyHeaders
	case "kong", "grapevine":
	default:
		return fmt.Errorf("proxy config: latency headers %q: want \"kong\" or \"grapevine\"", c.LatencyHeaders)
	}
	return nil
}
