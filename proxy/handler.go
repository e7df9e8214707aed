package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy/h2bridge"
	"github.com/grapevine-gw/grapevine/proxy/kongheaders"
	"github.com/valyala/fasthttp"
)

// headerNames are the latency header names of the configured family.
type headerNames struct {
	upstreamLatency []byte
	proxyLatency    []byte
	responseLatency []byte
}

func latencyHeaderNames(family string) headerNames {
	prefix := "X-Kong-"
	if family == "grapevine" {
		prefix = "X-Grapevine-"
	}
	return headerNames{
		upstreamLatency: []byte(prefix + "Upstream-Latency"),
		proxyLatency:    []byte(prefix + "Proxy-Latency"),
		responseLatency: []byte(prefix + "Response-Latency"),
	}
}

var (
	hdrXForwardedFor    = []byte("X-Forwarded-For")
	hdrXForwardedProto  = []byte("X-Forwarded-Proto")
	hdrXForwardedHost   = []byte("X-Forwarded-Host")
	hdrXForwardedPort   = []byte("X-Forwarded-Port")
	hdrXForwardedPath   = []byte("X-Forwarded-Path")
	hdrXForwardedPrefix = []byte("X-Forwarded-Prefix")
	hdrXRealIP          = []byte("X-Real-Ip")
	hdrVia              = []byte("Via")
	hdrRequestID        = []byte("X-Kong-Request-Id")
	hdrUpstreamStatus   = []byte("X-Kong-Upstream-Status")
	hdrLocation         = []byte("Location")
	schemeHTTP          = []byte("http")
	schemeHTTPS         = []byte("https")
	commaSpace          = []byte(", ")
	http11              = []byte("HTTP/1.1")
)

// reqState is per-request scratch space, pooled so the hot path allocates
// nothing once buffers have grown.
type reqState struct {
	id   [32]byte // X-Kong-Request-Id
	path []byte   // normalised path, when normalising changed it
	host []byte   // lower-cased host
	uri  []byte   // upstream request URI
	esc  []byte   // the upstream path escaped, swapped with uri
	head []byte   // upstream request line and headers
	buf  []byte   // header values
	via  []byte   // Via sent upstream
	ip   []byte   // client address as text
	body []byte   // the request body's buffer, when it came as a stream

	reqBody requestBody // the request body on its way upstream (reqbody.go)

	lport int // the local port the request arrived on

	h2        bool // the request is an HTTP/2 stream (h2bridge)
	badHeader bool // a header name of the request is not a token
	upgrade   bool // the request asks for a WebSocket upgrade (upgrade.go)
	plugged   bool // the route has plugins: x holds their changes

	edits HeaderEdits // upstream header changes by plugins (headeredit.go)
	x     exchange    // what plugin hooks see (exchange.go)
}

var statePool = sync.Pool{New: func() any {
	return &reqState{
		path: make([]byte, 0, 256),
		host: make([]byte, 0, 64),
		uri:  make([]byte, 0, 256),
		head: make([]byte, 0, 1024),
		buf:  make([]byte, 0, 256),
		via:  make([]byte, 0, 64),
		ip:   make([]byte, 0, 46),
	}
}}

// newRequestID fills st.id with 128 random bits in hex, Kong's format.
func (st *reqState) newRequestID() {
	var raw [16]byte
	a, b := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		raw[i], raw[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	hex.Encode(st.id[:], raw[:])
}

// handle is the request path: route, check, forward.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	st := statePool.Get().(*reqState)
	defer s.releaseState(st)
	defer s.recoverRequest(ctx, st)
	s.requests.Add(1)
	st.newRequestID()
	st.badHeader, st.upgrade, st.plugged = false, false, false
	st.h2 = h2bridge.IsHTTP2(ctx)
	st.edits.reset()
	if !s.acceptable(ctx, st) {
		return
	}
	a := s.state.Load()
	authority, rawPath, query := splitRequestURI(ctx.Request.Header.RequestURI())
	if authority == nil {
		authority = ctx.Request.Header.Host()
	}
	host, port := lowerHost(st, authority)
	st.lport = localPort(ctx.LocalAddr())
	if port == 0 {
		port = st.lport
	}
	req := request{
		method: ctx.Method(),
		host:   host,
		port:   port,
		path:   s.normalized(st, rawPath),
		header: &ctx.Request.Header,
		tls:    ctx.IsTLS(),
	}
	if req.tls && a.snap.sniRoutes > 0 {
		req.sni = serverName(ctx.Conn())
	}
	m, matched := a.snap.match(&req)
	switch {
	case m == nil:
		s.respondError(ctx, st, fasthttp.StatusNotFound, msgNoRoute)
	case !s.protocolAllowed(ctx, st, m.route, req.host, rawPath, query):
	case m.route.svc == nil:
		s.respondError(ctx, st, fasthttp.StatusServiceUnavailable, msgNoService)
	case !m.route.svc.proxyable && !m.route.svc.grpc:
		s.respondError(ctx, st, fasthttp.StatusBadGateway, msgBadResponse)
	default:
		client := a.clients[m.route.svc.idx]
		if m.route.preserveHost && client != nil && client.key.tls != nil {
			client = client.forServerName(req.host)
		}
		up := upstreamCall{client: client, route: m.route,
			host: req.host, path: req.path, rawPath: rawPath, query: query, matched: matched, matcher: m, live: a.liveFor(m.route.svc)}
		if m.route.plan != nil {
			s.forwardWithPlan(ctx, st, m.route.plan, up)
			return
		}
		s.forward(ctx, st, up)
	}
}

// acceptable refuses what nginx refuses before Kong sees a request: HTTP
// versions other than 1.0 and 1.1 (505) outside HTTP/2 streams, a request line (414) or header
// line (400, nginx's 494) longer than a large header buffer, TRACE and
// CONNECT (405) and a declared body over the limit (413). The connection
// is closed after.
func (s *Server) acceptable(ctx *fasthttp.RequestCtx, st *reqState) bool {
	h := &ctx.Request.Header
	switch proto := h.Protocol(); {
	case string(proto) != "HTTP/1.1" && string(proto) != "HTTP/1.0" && !st.h2:
		s.respondNginxError(ctx, st, fasthttp.StatusHTTPVersionNotSupported, msgVersion)
	case len(h.Method())+len(h.RequestURI())+len(h.Protocol())+2 > s.cfg.LargeHeaderBufferSize:
		s.respondNginxError(ctx, st, fasthttp.StatusRequestURITooLong, msgURITooLong)
	case hasLineLongerThan(h.RawHeaders(), s.cfg.LargeHeaderBufferSize):
		s.respondNginxError(ctx, st, fasthttp.StatusBadRequest, msgHeaderTooLarge)
	case h.ContentLength() == -1 && rawHeaderNamed(h.RawHeaders(), "content-length"):
		// fasthttp reads such a body as chunked; nginx refuses it, as a
		// proxy must not guess (RFC 9112 §6.3, request smuggling).
		s.respondNginxError(ctx, st, fasthttp.StatusBadRequest, msgBadRequest)
	case h.IsTrace() || h.IsConnect():
		s.respondNginxError(ctx, st, fasthttp.StatusMethodNotAllowed, msgMethodNotAllowed)
	case s.tooLarge(h.ContentLength()):
		// nginx checks a declared length before any phase of Kong's runs.
		s.respondNginxError(ctx, st, fasthttp.StatusRequestEntityTooLarge, msgPayloadTooLarge)
	default:
		return true
	}
	ctx.SetConnectionClose()
	return false
}

// rawHeaderNamed reports whether raw header lines include one named name
// (lower case), whatever its case.
func rawHeaderNamed(raw []byte, name string) bool {
	for len(raw) > 0 {
		line, rest, _ := bytes.Cut(raw, []byte{'\n'})
		if k, _, ok := bytes.Cut(line, []byte{':'}); ok && strings.EqualFold(string(bytes.TrimSpace(k)), name) {
			return true
		}
		raw = rest
	}
	return false
}

// hasLineLongerThan reports whether raw header lines hold one longer than
// limit bytes, line end excluded; headers shorter than limit in all (every
// ordinary request) are not scanned.
func hasLineLongerThan(raw []byte, limit int) bool {
	for len(raw) > limit {
		i := bytes.IndexByte(raw, '\n')
		if i < 0 || i > limit {
			return true
		}
		raw = raw[i+1:]
	}
	return false
}

// splitRequestURI splits the request target into path and query ("?" kept
// so a bare trailing "?" survives, as in Kong). An absolute-form target
// also gives its authority, which names the host instead of the Host
// header (RFC 9112 §3.2.2); authority is nil for an origin-form target.
func splitRequestURI(uri []byte) (authority, path, query []byte) {
	if len(uri) > 0 && uri[0] != '/' {
		if i := bytes.Index(uri, []byte("://")); i >= 0 {
			rest := uri[i+3:]
			j := bytes.IndexAny(rest, "/?")
			if j < 0 {
				return rest, []byte("/"), nil
			}
			authority, uri = rest[:j], rest[j:]
			if k := bytes.LastIndexByte(authority, '@'); k >= 0 {
				authority = authority[k+1:]
			}
		}
	}
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		return authority, uri[:i], uri[i:]
	}
	return authority, uri, nil
}

// lowerHost splits the port from a Host header (or an authority) and
// lower-cases the name; port is 0 when the header has none.
func lowerHost(st *reqState, host []byte) (name []byte, port int) {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && !bytes.HasSuffix(host, []byte("]")) {
		port = parsePort(host[i+1:])
		host = host[:i]
	}
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			st.host = append(st.host[:0], host...)
			for j, c := range st.host {
				if 'A' <= c && c <= 'Z' {
					st.host[j] = c + 'a' - 'A'
				}
			}
			return st.host, port
		}
	}
	return host, port
}

// parsePort reads a decimal port, 0 when p is not one.
func parsePort(p []byte) int {
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' || n > 65535 {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0
	}
	return n
}

// normalized returns the normalised path, built in st.path only when it
// differs from the raw one.
func (s *Server) normalized(st *reqState, raw []byte) []byte {
	if !entity.PathNeedsNormalizing(raw) {
		return raw
	}
	st.path = entity.AppendNormalizedPath(st.path[:0], raw)
	return st.path
}

// protocolAllowed answers an https-only route hit over plain HTTP and a
// gRPC route hit by anything but gRPC over HTTP/2 as Kong does
// (handler.lua) and reports whether the request may go on.
func (s *Server) protocolAllowed(ctx *fasthttp.RequestCtx, st *reqState, r *route, host, rawPath, query []byte) bool {
	if r.grpcOnly {
		return s.grpcAllowed(ctx, st, r)
	}
	if r.allowsHTTP || ctx.IsTLS() {
		return true
	}
	switch r.redirectCode {
	case 301, 302, 307, 308:
		s.redirectHTTPS(ctx, st, r.redirectCode, host, rawPath, query)
	default:
		s.respondError(ctx, st, fasthttp.StatusUpgradeRequired, msgUseHTTPS)
		ctx.Response.Header.Set("Connection", "Upgrade")
		ctx.Response.Header.Set("Upgrade", "TLS/1.2, HTTP/1.1")
	}
	return false
}

func (s *Server) redirectHTTPS(ctx *fasthttp.RequestCtx, st *reqState, code int, host, rawPath, query []byte) {
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(code)
	loc := append(st.buf[:0], "https://"...)
	loc = append(append(append(loc, host...), rawPath...), query...)
	resp.Header.SetCanonical(hdrLocation, loc)
	s.setKongResponseHeaders(ctx, st)
}

// respondError writes an error Kong raises itself (kong.response.error):
// its body type follows Accept, JSON by default.
// A gRPC request gets the status's gRPC code and name (kong/pdk/response.lua).
func (s *Server) respondError(ctx *fasthttp.RequestCtx, st *reqState, status int, msg string) {
	if st.h2 && isGRPCRequest(ctx, st) {
		s.writeGRPCError(ctx, st, status, "")
		return
	}
	s.writeError(ctx, st, status, msg, negotiate(ctx.Request.Header.Peek("Accept")))
}

// respondNginxError writes an error nginx raises, answered by Kong's error
// handler: refused requests, upstream failures, a panic.
// A gRPC request that accepts gRPC gets its gRPC code and the message
// (kong/error_handlers.lua).
func (s *Server) respondNginxError(ctx *fasthttp.RequestCtx, st *reqState, status int, msg string) {
	if st.h2 && isGRPCRequest(ctx, st) {
		if accept := ctx.Request.Header.Peek("Accept"); accept == nil || bytes.HasPrefix(accept, contentTypeGRPC) {
			s.writeGRPCError(ctx, st, status, msg)
			return
		}
	}
	s.writeError(ctx, st, status, msg, s.negotiateNginx(&ctx.Request.Header))
}

func (s *Server) writeError(ctx *fasthttp.RequestCtx, st *reqState, status int, msg string, t bodyType) {
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(status)
	body, contentType := appendErrorBody(st.buf[:0], t, msg, st.id[:])
	st.buf = body[:0]
	resp.Header.SetContentType(contentType)
	resp.SetBody(body)
	s.setKongResponseHeaders(ctx, st)
	if e := s.log.Debug(); e.Enabled() {
		e.Int("status", status).Bytes("path", ctx.Path()).Str("message", msg).Bytes("request_id", st.id[:]).Msg("proxy error response")
	}
}

// setKongResponseHeaders adds the headers of a response Kong generated.
func (s *Server) setKongResponseHeaders(ctx *fasthttp.RequestCtx, st *reqState) {
	h := &ctx.Response.Header
	if s.cfg.Headers.Has(kongheaders.ResponseLatency) {
		h.SetCanonical(s.names.responseLatency, appendMillis(st.ip[:0], time.Since(ctx.Time())))
	}
	if s.cfg.Headers.Has(kongheaders.RequestID) {
		h.SetCanonical(hdrRequestID, st.id[:])
	}
}

func (s *Server) recoverRequest(ctx *fasthttp.RequestCtx, st *reqState) {
	v := recover()
	if v == nil {
		return
	}
	s.log.Error().Interface("panic", v).Bytes("request_id", st.id[:]).Bytes("stack", debug.Stack()).Msg("proxy request panicked")
	s.respondNginxError(ctx, st, fasthttp.StatusInternalServerError, msgUnexpected)
}

// handleParseError answers requests fasthttp could not read, with the
// status nginx would give and Kong's error body; the connection closes.
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	st := statePool.Get().(*reqState)
	defer s.releaseState(st)
	st.newRequestID()
	status, msg := parseErrorStatus(err)
	s.respondNginxError(ctx, st, status, msg)
	ctx.SetConnectionClose()
	s.log.Debug().Err(err).Int("status", status).Stringer("client", ctx.RemoteAddr()).Msg("proxy: request refused")
}

func appendMillis(dst []byte, d time.Duration) []byte {
	return strconv.AppendInt(dst, d.Milliseconds(), 10)
}

// serverName is the server name a TLS client asked for, in lower case.
func serverName(c net.Conn) string {
	tc, ok := c.(interface{ ConnectionState() tls.ConnectionState }) // a *tls.Conn or an HTTP/2 stream of one
	if !ok {
		return ""
	}
	name := tc.ConnectionState().ServerName
	for i := 0; i < len(name); i++ {
		if 'A' <= name[i] && name[i] <= 'Z' {
			return strings.ToLower(name)
		}
	}
	return name
}

// localPort is the port of a connection's local address, 0 when it has
// none.
func localPort(addr net.Addr) int {
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.Port
	}
	return 0
}

// appendRemoteIP appends the client's IP address without allocating.
func appendRemoteIP(dst []byte, addr net.Addr) []byte {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return append(dst, addr.String()...)
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return dst
	}
	return ip.Unmap().AppendTo(dst)
}
