package proxy

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/grapevine-gw/grapevine/proxy/balancer"
	"github.com/grapevine-gw/grapevine/proxy/kongheaders"
	"github.com/valyala/fasthttp"
)

// upstreamCall is what forward needs to know about a matched request.
type upstreamCall struct {
	client  *upstreamClient
	route   *route
	host    []byte   // lower case, without port
	path    []byte   // normalised
	rawPath []byte   // the path as received, for X-Forwarded-Path
	query   []byte   // "?…" or empty
	matched int      // length of the matched path prefix, -1 without paths
	matcher *matcher // the route's condition that matched (its path regexes give hash_on uri_capture)
	// live is the balancer of the service's upstream, nil for a service
	// naming a host (balanced.go); hostHeader is then the Host of the
	// address a try goes to.
	live       *balancer.Live
	hostHeader []byte
}

// forward sends the client's request upstream (retrying as the service
// allows) and leaves the upstream's response in ctx.Response with Kong's
// downstream headers added. The client's request is read, never changed.
func (s *Server) forward(ctx *fasthttp.RequestCtx, st *reqState, up upstreamCall) {
	svc := up.route.svc
	if svc.grpc {
		s.forwardGRPC(ctx, st, up)
		return
	}
	req := &ctx.Request
	if bodyErr := s.prepareBody(ctx, st, up.route); bodyErr != nil {
		s.respondBodyError(ctx, st, bodyErr)
		return
	}
	body := &st.reqBody
	if svc.upstream != 0 {
		s.forwardBalanced(ctx, st, up, body)
		return
	}
	st.head = s.appendUpstreamHead(st.head[:0], ctx, st, up, body.framedLength())
	if st.badHeader {
		s.respondBodyError(ctx, st, errBadHeaderName)
		return
	}
	if mem := body.inMemory(); len(mem) > 0 && len(st.head)+len(mem) <= maxPending {
		// One write for the whole request.
		st.head, body.mem = append(st.head, mem...), nil
	}
	if st.upgrade {
		s.forwardUpgrade(ctx, st, up, body)
		return
	}
	sent := time.Now()
	err := doWithRetries(up.client, sent, st.head, body, req.Header.IsHead(), up.route.streamAnswer, &ctx.Response, svc.retries, req.Header.Method())
	received := time.Now()
	if err != nil {
		s.respondForwardError(ctx, st, svc, err)
		return
	}
	s.setProxiedResponseHeaders(ctx, st, sent, received)
	if e := s.log.Debug(); e.Enabled() {
		e.Bytes("method", ctx.Method()).Bytes("upstream_uri", st.uri).Str("route", up.route.id).
			Int("status", ctx.Response.StatusCode()).Dur("upstream_latency", received.Sub(sent)).
			Bytes("request_id", st.id[:]).Msg("proxy access")
	}
}

// respondForwardError answers a request that could not be forwarded: a
// client whose streamed body failed gets nginx's answer for it, anything
// else is the upstream failing.
func (s *Server) respondForwardError(ctx *fasthttp.RequestCtx, st *reqState, svc *service, err error) {
	var cbe *clientBodyError
	if errors.As(err, &cbe) {
		s.respondBodyError(ctx, st, cbe.be)
		return
	}
	s.respondUpstreamError(ctx, st, svc, err)
}

// doWithRetries sends the request, repeating it up to retries more times
// when the failure allows (see retryable).
func doWithRetries(c *upstreamClient, now time.Time, head []byte, body *requestBody, isHead, stream bool, resp *fasthttp.Response, retries int, method []byte) error {
	for try := 0; ; try++ {
		err := c.do(now, head, body, isHead, stream, method, resp)
		if err == nil || try >= retries || !retryable(err, method) || !body.replayable() {
			return err
		}
		now = time.Now()
	}
}

// appendUpstreamHead appends the request line and headers sent upstream:
// HTTP/1.1, the Host of the service (or the client's, with preserve_host),
// the client's headers in the order received less the hop-by-hop ones and
// those Kong sets itself, then Kong's upstream headers (§2.7), the
// WebSocket upgrade headers when the client asked for one (st.upgrade is
// set here) and the body's framing: bodyLen bytes, or chunked when -1.
func (s *Server) appendUpstreamHead(dst []byte, ctx *fasthttp.RequestCtx, st *reqState, up upstreamCall, bodyLen int64) []byte {
	h := &ctx.Request.Header
	r := up.route
	st.uri = appendUpstreamPath(st.uri[:0], r.svc.base, up.path, r.stripPath, up.matched)
	method, query := h.Method(), up.query
	if st.plugged {
		method, query = st.x.rewriteUpstream(st, query)
	}
	if needsEscaping(st.uri) {
		st.esc = appendEscapedPath(st.esc[:0], st.uri)
		st.uri, st.esc = st.esc, st.uri
	}
	st.uri = append(st.uri, query...)

	dst = append(append(append(dst, method...), ' '), st.uri...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	if host := h.Host(); r.preserveHost && len(host) > 0 {
		dst = append(dst, host...)
	} else if up.hostHeader != nil {
		dst = append(dst, up.hostHeader...)
	} else {
		dst = append(dst, r.svc.hostHeader...)
	}
	dst = append(dst, '\r', '\n')

	xff, via := st.buf[:0], st.via[:0] // the client's values, joined
	hopByHop := namedHopHeaders(h.Peek("Connection"))
	trailers := false
	for key, value := range h.AllInOrder() {
		switch string(key) {
		case "X-Forwarded-For":
			xff = appendList(xff, value)
		case "Via":
			via = appendList(via, value)
		case "Te":
			trailers = trailers || hasToken(value, "trailers")
		case "Upgrade":
			// Only a WebSocket upgrade goes on, with Kong's own headers
			// below; any other Upgrade is dropped.
			st.upgrade = st.upgrade || bytes.EqualFold(value, websocketToken)
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer",
			"Connection", "Keep-Alive", "Proxy-Connection", "Proxy",
			"X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port",
			"X-Forwarded-Path", "X-Forwarded-Prefix", "X-Real-Ip", "X-Kong-Request-Id":
		default:
			if len(st.edits.ops) > 0 && st.edits.drops(key) {
				continue
			}
			st.badHeader = st.badHeader || !isToken(key)
			if hopByHop == nil || !hasToken(hopByHop, string(key)) {
				dst = appendHeaderLine(dst, key, value)
			}
		}
	}
	if trailers {
		dst = append(dst, "TE: trailers\r\n"...)
	}
	dst = st.edits.appendHeaders(dst)

	st.ip = appendRemoteIP(st.ip[:0], ctx.RemoteAddr())
	st.buf, st.via = appendList(xff, st.ip), appendList(via, s.inboundVia(st))
	dst = appendHeaderLine(dst, hdrXForwardedFor, st.buf)
	if ctx.IsTLS() {
		dst = appendHeaderLine(dst, hdrXForwardedProto, schemeHTTPS)
	} else {
		dst = appendHeaderLine(dst, hdrXForwardedProto, schemeHTTP)
	}
	dst = appendHeaderLine(dst, hdrXForwardedHost, up.host)
	dst = append(append(dst, hdrXForwardedPort...), ':', ' ')
	dst = append(strconv.AppendInt(dst, int64(st.lport), 10), '\r', '\n')
	dst = appendHeaderLine(dst, hdrXForwardedPath, up.rawPath)
	if r.stripPath && up.matched > 0 && string(up.path[:up.matched]) != "/" {
		dst = appendHeaderLine(dst, hdrXForwardedPrefix, up.path[:up.matched])
	}
	dst = appendHeaderLine(dst, hdrXRealIP, st.ip)
	dst = appendHeaderLine(dst, hdrVia, st.via)
	if s.cfg.UpstreamHeaders.Has(kongheaders.RequestID) {
		dst = appendHeaderLine(dst, hdrRequestID, st.id[:])
	}
	if st.upgrade {
		dst = append(dst, upgradeHeaders...)
	}
	switch {
	case bodyLen < 0:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	case bodyLen > 0 || !(h.IsGet() || h.IsHead()):
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, bodyLen, 10)
		dst = append(dst, '\r', '\n')
	}
	return append(dst, '\r', '\n')
}

// namedHopHeaders returns a Connection header naming hop-by-hop headers to
// drop, nil for the plain values Kong leaves alone (kong/runloop/handler.lua
// clears the headers a Connection header names).
func namedHopHeaders(connection []byte) []byte {
	switch strings.ToLower(string(connection)) {
	case "", "keep-alive", "close", "upgrade":
		return nil
	}
	return connection
}

// hasToken reports whether the comma-separated list holds name, compared
// without case.
func hasToken(list []byte, name string) bool {
	for len(list) > 0 {
		var item []byte
		item, list, _ = bytes.Cut(list, []byte{','})
		if strings.EqualFold(string(bytes.TrimSpace(item)), name) {
			return true
		}
	}
	return false
}

// isToken reports whether name is an RFC 9110 token, as a field name
// must be; fasthttp lets spaces and other separators through.
func isToken(name []byte) bool {
	for _, c := range name {
		if !tokenChars[c] {
			return false
		}
	}
	return len(name) > 0
}

var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func appendHeaderLine(dst, key, value []byte) []byte {
	dst = append(append(dst, key...), ':', ' ')
	return append(append(dst, value...), '\r', '\n')
}

// setProxiedResponseHeaders adds Kong's downstream headers (§2.8).
func (s *Server) setProxiedResponseHeaders(ctx *fasthttp.RequestCtx, st *reqState, sent, received time.Time) {
	if st.plugged {
		st.x.sent, st.x.received = sent, received
	}
	h := &ctx.Response.Header
	h.ResetConnectionClose() // the upstream closing is no reason to close the client
	if !h.IsHTTP11() {
		// The client's answer is HTTP/1.1 whatever the upstream spoke, as
		// nginx's is: an HTTP/1.0 status line would make a client ignore
		// the chunked framing a streamed answer gets.
		h.SetProtocol(http11)
	}
	// Hop-by-hop headers of the upstream stay with it (Kong's header_filter).
	if named := namedHopHeaders(h.Peek("Connection")); named != nil {
		for name := range bytes.SplitSeq(named, []byte{','}) {
			h.DelBytes(bytes.TrimSpace(name))
		}
	}
	h.Del("Connection")
	h.Del("Keep-Alive")
	h.Del("Upgrade") // kept again by forwardUpgrade for a WebSocket request
	h.Del("Trailer") // the body goes as one piece, without its trailers
	send := s.cfg.Headers
	if send.Has(kongheaders.Via) {
		st.buf = appendList(st.buf[:0], h.PeekBytes(hdrVia))
		st.buf = appendList(st.buf, s.via)
		h.SetCanonical(hdrVia, st.buf)
	}
	if send.Has(kongheaders.UpstreamLatency) {
		h.SetCanonical(s.names.upstreamLatency, appendMillis(st.ip[:0], received.Sub(sent)))
	}
	if send.Has(kongheaders.ProxyLatency) {
		h.SetCanonical(s.names.proxyLatency, appendMillis(st.ip[:0], sent.Sub(ctx.Time())))
	}
	if send.Has(kongheaders.UpstreamStatus) {
		h.SetCanonical(hdrUpstreamStatus, strconv.AppendInt(st.ip[:0], int64(ctx.Response.StatusCode()), 10))
	}
	if send.Has(kongheaders.RequestID) {
		h.SetCanonical(hdrRequestID, st.id[:])
	}
}

// appendList appends v to a comma-separated list: ", v", or just v when
// the list is empty.
func appendList(list, v []byte) []byte {
	if len(v) == 0 {
		return list
	}
	if len(list) > 0 {
		list = append(list, commaSpace...)
	}
	return append(list, v...)
}
