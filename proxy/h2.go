package proxy

import (
	"bytes"
	"io"
	"log"
	"net"
	"slices"
	"time"

	"golang.org/x/net/http2"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/internal/listen"
	"github.com/grapevine-gw/grapevine/proxy/h2bridge"
)

// HTTP/2: with the http2 flag on any entry, every ssl listener offers h2
// before http/1.1 by ALPN; a connection that picks h2 is handed by
// fasthttp (NextProto) to h2bridge, whose streams run the same handler
// as HTTP/1.1 requests.
//
// Kong's template turns "http2 on" for its whole proxy server block when
// any proxy_listen entry has http2 (kong/templates/nginx_kong.lua), and
// nginx (1.25.1+) then also takes HTTP/2 with prior knowledge (h2c) on
// that block's plain listeners, telling it from HTTP/1.1 by the
// connection preface. So do we: with any http2 entry, a plain
// connection that opens with the preface becomes HTTP/2 (h2cConn).

// anyHTTP2 reports whether an entry has http2: HTTP/2 is then on for
// every listener, h2 by ALPN on the ssl ones (nginx offers it on every
// ssl listener of a server block with "http2 on") and h2c by the preface
// on the plain ones.
func anyHTTP2(entries []listen.Listener) bool {
	return slices.ContainsFunc(entries, func(e listen.Listener) bool { return e.Has("http2") })
}

// enableHTTP2 serves HTTP/2 when an entry asks for it. Only listeners
// whose ALPN offers h2 (serverTLSConfig) ever negotiate it by TLS.
func (s *Server) enableHTTP2(entries []listen.Listener) {
	for _, e := range entries {
		if e.Has("http2") {
			s.h2 = h2bridge.New(s.handle, h2bridge.Options{
				IdleTimeout:    idleTimeout,
				MaxHeaderBytes: s.headerBufferSize(),
				ServerName:     "grapevine/" + s.cfg.Version,
				ErrorLog:       log.New(debugWriter{s.log}, "", 0),
				Logger:         fasthttpLogger{s.log},
			})
			s.srv.NextProto("h2", s.h2.ServeConn)
			for _, l := range s.listeners {
				if l.tls == nil {
					l.h2c = s.h2.ServeConn
				}
			}
			return
		}
	}
}

// h2cConn is a plain client connection of a proxy with HTTP/2 on: its
// first bytes tell HTTP/1.1 from the HTTP/2 preface. An HTTP/2 one is
// served by the HTTP/2 server from within fasthttp's first read (so
// fasthttp counts it open until it ends), then reads as closed.
type h2cConn struct {
	net.Conn                      // the tracked connection (*coarseConn)
	serve    func(net.Conn) error // the HTTP/2 server's ServeConn
	sniffed  bool                 // the first bytes were looked at
	pending  []byte               // bytes read while looking, not yet returned
}

func (c *h2cConn) Read(p []byte) (int, error) {
	if !c.sniffed {
		c.sniffed = true
		if c.sniff() {
			return 0, io.EOF
		}
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// sniff reads the first bytes (under fasthttp's header timeout) and
// serves HTTP/2 when they are the preface; otherwise they are kept for
// fasthttp. No HTTP/1 request line is shorter than 3 bytes.
func (c *h2cConn) sniff() bool {
	buf := make([]byte, len(http2.ClientPreface))
	n, err := io.ReadAtLeast(c.Conn, buf, 3)
	if err == nil && string(buf[:3]) == "PRI" {
		var m int
		m, err = io.ReadFull(c.Conn, buf[n:])
		n += m
	}
	if err == nil && n == len(buf) && string(buf) == http2.ClientPreface {
		_ = c.Conn.SetDeadline(time.Time{}) // the HTTP/2 server keeps its own time
		_ = c.serve(prefacedConn{Conn: c.Conn, r: io.MultiReader(bytes.NewReader(buf), c.Conn)})
		return true
	}
	c.pending = buf[:n]
	return false
}

// prefacedConn gives back the preface before the rest of the connection.
type prefacedConn struct {
	net.Conn
	r io.Reader
}

func (c prefacedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// debugWriter sends the HTTP/2 server's messages (mostly clients that
// misbehave) to the debug log.
type debugWriter struct{ log zerolog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug().Str("component", "http2").Msg(string(bytes.TrimSpace(p)))
	return len(p), nil
}

// inboundVia is the Via entry sent upstream: the client's HTTP version,
// as Kong's (kong/runloop/handler.lua: ngx.req.http_version, which reads
// 2 for HTTP/2, then the server's name).
func (s *Server) inboundVia(st *reqState) []byte {
	if st.h2 {
		return s.via2
	}
	return s.via
}
