package proxy

import (
	"bytes"
	"log"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/internal/listen"
	"github.com/grapevine-gw/grapevine/proxy/h2bridge"
)

// HTTP/2: an ssl listener with the http2 flag offers h2 before http/1.1
// by ALPN; a connection that picks h2 is handed by fasthttp (NextProto)
// to h2bridge, whose streams run the same handler as HTTP/1.1 requests.

// wantsHTTP2 reports whether a proxy_listen entry serves HTTP/2 by ALPN.
func wantsHTTP2(e listen.Listener) bool {
	return e.Has("ssl") && e.Has("http2")
}

// enableHTTP2 serves h2 on the fasthttp server when an entry asks for it.
// Only listeners whose ALPN offers h2 (serverTLSConfig) ever negotiate it.
func (s *Server) enableHTTP2(entries []listen.Listener) {
	for _, e := range entries {
		if wantsHTTP2(e) {
			s.h2 = h2bridge.New(s.handle, h2bridge.Options{
				IdleTimeout:    idleTimeout,
				MaxHeaderBytes: s.headerBufferSize(),
				ServerName:     "grapevine/" + s.cfg.Version,
				ErrorLog:       log.New(debugWriter{s.log}, "", 0),
				Logger:         fasthttpLogger{s.log},
			})
			s.srv.NextProto("h2", s.h2.ServeConn)
			return
		}
	}
}

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
