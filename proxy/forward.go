package proxy

import (
	"time"

	"github.com/valyala/fasthttp"
)

// upstreamCall is what forward needs to know about a matched request.
type upstreamCall struct {
	client  *fasthttp.HostClient
	route   *route
	host    []byte // lower case, without port
	path    []byte // normalised
	rawPath []byte // the path as received, for X-Forwarded-Path
	query   []byte // "?…" or empty
	matched int    // length of the matched path prefix, -1 without paths
}

// forward rewrites the client's request in place into the upstream request,
// sends it (retrying as the service allows) and leaves the upstream's
// response in ctx.Response with Kong's downstream headers added.
func (s *Server) forward(ctx *fasthttp.RequestCtx, st *reqState, up upstreamCall) {
	svc := up.route.svc
	clientClose := ctx.Request.Header.ConnectionClose()
	s.prepareUpstreamRequest(ctx, st, up)
	sent := time.Now()
	err := doWithRetries(up.client, &ctx.Request, &ctx.Response, svc.retries)
	received := time.Now()
	if clientClose {
		// The client asked to close; the server reads this flag after us.
		ctx.Request.Header.SetConnectionClose()
	}
	if err != nil {
		status, msg := upstreamErrorStatus(err)
		if e := s.log.Debug(); e.Enabled() {
			e.Err(err).Str("service", svc.id).Str("upstream", svc.addr).Msg("proxy upstream failed")
		}
		s.respondError(ctx, st, status, msg)
		return
	}
	s.setProxiedResponseHeaders(ctx, st, sent, received)
	if e := s.log.Debug(); e.Enabled() {
		e.Bytes("method", ctx.Method()).Bytes("upstream_uri", st.uri).Str("route", up.route.id).
			Int("status", ctx.Response.StatusCode()).Dur("upstream_latency", received.Sub(sent)).
			Bytes("request_id", st.id[:]).Msg("proxy access")
	}
}

// doWithRetries sends req, repeating it up to retries more times when the
// failure allows (see retryable).
func doWithRetries(c *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, retries int) error {
	for try := 0; ; try++ {
		err := c.Do(req, resp)
		if err == nil || try >= retries || !retryable(err, req.Header.Method()) {
			return err
		}
	}
}

// prepareUpstreamRequest sets Kong's upstream headers (§2.7), the Host and
// the upstream URI. Everything read from the original request (path, host)
// aliases its buffers, so the request line and Host are replaced last.
func (s *Server) prepareUpstreamRequest(ctx *fasthttp.RequestCtx, st *reqState, up upstreamCall) {
	h := &ctx.Request.Header
	r := up.route
	st.ip = appendRemoteIP(st.ip[:0], ctx.RemoteAddr())
	st.buf = appendList(st.buf[:0], h.PeekBytes(hdrXForwardedFor), st.ip)
	h.SetCanonical(hdrXForwardedFor, st.buf)
	if ctx.IsTLS() {
		h.SetCanonical(hdrXForwardedProto, schemeHTTPS)
	} else {
		h.SetCanonical(hdrXForwardedProto, schemeHTTP)
	}
	h.SetCanonical(hdrXForwardedHost, up.host)
	h.SetCanonical(hdrXForwardedPort, s.port)
	h.SetCanonical(hdrXForwardedPath, up.rawPath)
	if r.stripPath && up.matched > 0 && string(up.path[:up.matched]) != "/" {
		h.SetCanonical(hdrXForwardedPrefix, up.path[:up.matched])
	} else {
		h.DelBytes(hdrXForwardedPrefix)
	}
	h.SetCanonical(hdrXRealIP, st.ip)
	st.buf = appendList(st.buf[:0], h.PeekBytes(hdrVia), s.via)
	h.SetCanonical(hdrVia, st.buf)
	h.SetCanonical(hdrRequestID, st.id[:])
	removeHopByHop(h)

	st.uri = appendUpstreamPath(st.uri[:0], r.svc.base, up.path, r.stripPath, up.matched)
	st.uri = append(st.uri, up.query...)
	if !r.preserveHost {
		h.SetHostBytes(r.svc.hostHeader)
	}
	ctx.Request.UseHostHeader = true
	ctx.Request.SetRequestURIBytes(st.uri)
	if r.svc.protocol == "https" {
		ctx.Request.URI().SetSchemeBytes(schemeHTTPS)
	}
}

// removeHopByHop drops the connection-level headers a proxy must not pass
// on; the upstream connection is always keep-alive.
func removeHopByHop(h *fasthttp.RequestHeader) {
	h.ResetConnectionClose()
	h.Del("Keep-Alive")
	h.Del("Proxy-Connection")
	h.Del("Upgrade")
}

// setProxiedResponseHeaders adds Kong's downstream headers (§2.8).
func (s *Server) setProxiedResponseHeaders(ctx *fasthttp.RequestCtx, st *reqState, sent, received time.Time) {
	h := &ctx.Response.Header
	h.ResetConnectionClose() // the upstream closing is no reason to close the client
	h.Del("Keep-Alive")
	st.buf = appendList(st.buf[:0], h.PeekBytes(hdrVia), s.via)
	h.SetCanonical(hdrVia, st.buf)
	h.SetCanonical(s.names.upstreamLatency, appendMillis(st.ip[:0], received.Sub(sent)))
	h.SetCanonical(s.names.proxyLatency, appendMillis(st.ip[:0], sent.Sub(ctx.Time())))
	h.SetCanonical(hdrRequestID, st.id[:])
}

// appendList appends "prev, v", or just v when prev is empty.
func appendList(dst, prev, v []byte) []byte {
	if len(prev) > 0 {
		dst = append(append(dst, prev...), commaSpace...)
	}
	return append(dst, v...)
}
