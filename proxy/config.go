package proxy

import (
	"fmt"
	"strings"

	"github.com/rs/zerolog"
)

// Config is the proxy's configuration. Build it from DefaultConfig, change
// what you need, and hand it to New; it is never mutated after Start.
type Config struct {
	// Listen is kong.conf's proxy_listen. Default "0.0.0.0:8000". Kong-style
	// trailing flags after a space (" reuseport", " backlog=…") are ignored.
	Listen string
	// Version appears in Via and Server as "grapevine/<Version>". Default "dev".
	Version string
	// LatencyHeaders picks the latency header family: "kong" (default:
	// X-Kong-Upstream-Latency, X-Kong-Proxy-Latency, X-Kong-Response-Latency)
	// or "grapevine" (X-Grapevine-…).
	LatencyHeaders string
	// Logger receives proxy events. Access logs are written at debug level
	// only; the zero value discards everything.
	Logger zerolog.Logger
}

// DefaultConfig returns Kong's defaults.
func DefaultConfig() Config {
	return Config{
		Listen:         "0.0.0.0:8000",
		Version:        "dev",
		LatencyHeaders: "kong",
		Logger:         zerolog.Nop(),
	}
}

// Validate checks the configuration and fills empty fields with defaults.
func (c *Config) Validate() error {
	def := DefaultConfig()
	if strings.TrimSpace(c.Listen) == "" {
		c.Listen = def.Listen
	}
	if c.Version == "" {
		c.Version = def.Version
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

// listenAddr strips Kong's trailing listen flags ("0.0.0.0:8000 reuseport").
// Only the first address of a comma-separated list is used.
func listenAddr(listen string) string {
	listen = strings.TrimSpace(listen)
	if i := strings.IndexByte(listen, ','); i >= 0 {
		listen = strings.TrimSpace(listen[:i])
	}
	if i := strings.IndexAny(listen, " \t"); i >= 0 {
		listen = listen[:i]
	}
	return listen
}
