package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/grapevine-gw/grapevine/proxy/balancer"
	"github.com/grapevine-gw/grapevine/proxy/grpcup"
	"github.com/grapevine-gw/grapevine/proxy/h2bridge"
)

// gRPC: routes with protocols grpc or grpcs take HTTP/2 gRPC requests
// only (kong/runloop/handler.lua, access); grpc and grpcs services are
// reached over HTTP/2 (h2c or TLS) through grpcup, and the answer's body
// streams back with its trailers. Errors a gRPC client gets are shaped as
// Kong's PDK shapes them (kong/pdk/response.lua: grpc-status and
// grpc-message headers, no body).

var contentTypeGRPC = []byte("application/grpc")

// isGRPCRequest is Kong's is_grpc_request: an HTTP/2 request whose
// Content-Type begins with application/grpc.
func isGRPCRequest(ctx *fasthttp.RequestCtx, st *reqState) bool {
	return st.h2 && bytes.HasPrefix(ctx.Request.Header.ContentType(), contentTypeGRPC)
}

// grpcAllowed checks a request that matched a grpc or grpcs route as
// Kong's access phase does and answers it when it may not go on.
func (s *Server) grpcAllowed(ctx *fasthttp.RequestCtx, st *reqState, r *route) bool {
	switch {
	case !bytes.HasPrefix(ctx.Request.Header.ContentType(), contentTypeGRPC):
		s.respondError(ctx, st, fasthttp.StatusUnsupportedMediaType, msgNotGRPC)
	case !st.h2:
		s.respondError(ctx, st, fasthttp.StatusUpgradeRequired, msgUseHTTP2)
		ctx.Response.Header.Set("Connection", "Upgrade")
		ctx.Response.Header.Set("Upgrade", "HTTP/2")
	case !r.grpcPlain && !ctx.IsTLS():
		// kong.response.exit(200) with the gRPC status in headers.
		s.writeGRPCStatus(ctx, st, fasthttp.StatusOK, 1, "gRPC request matched gRPCs route")
	default:
		return true
	}
	return false
}

// httpToGRPC is Kong's HTTP_TO_GRPC_STATUS, with its fallbacks by class.
func httpToGRPC(status int) int {
	switch status {
	case 200:
		return 0
	case 400:
		return 3
	case 401:
		return 16
	case 403:
		return 7
	case 404:
		return 5
	case 409:
		return 6
	case 429:
		return 8
	case 499:
		return 1
	case 500:
		return 13
	case 501:
		return 12
	case 503:
		return 14
	case 504:
		return 4
	}
	switch {
	case status >= 500 && status <= 599:
		return 13
	case status >= 400 && status <= 499:
		return 3
	case status >= 200 && status <= 299:
		return 0
	}
	return 2
}

// grpcCodeNames are Kong's GRPC_MESSAGES, the grpc-message of an error
// raised with no message of its own.
var grpcCodeNames = [...]string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
	"Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}

// writeGRPCError answers a gRPC request with an HTTP error status in
// gRPC's shape; msg empty means the status code's name.
func (s *Server) writeGRPCError(ctx *fasthttp.RequestCtx, st *reqState, status int, msg string) {
	code := httpToGRPC(status)
	if msg == "" {
		msg = grpcCodeNames[code]
	}
	s.writeGRPCStatus(ctx, st, status, code, msg)
}

func (s *Server) writeGRPCStatus(ctx *fasthttp.RequestCtx, st *reqState, status, code int, msg string) {
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(status)
	resp.Header.SetContentType("application/grpc")
	resp.Header.Set("grpc-status", strconv.Itoa(code))
	resp.Header.Set("grpc-message", msg)
	resp.Header.SetContentLength(0)
	s.setKongResponseHeaders(ctx, st)
}

// grpcScheme is the URL scheme the HTTP/2 client takes for a service.
func grpcScheme(svc *service) string {
	if svc.protocol == "grpcs" {
		return "https"
	}
	return "http"
}

// forwardGRPC sends a request to a grpc or grpcs service over HTTP/2. The
// headers are the ones an HTTP/1.1 upstream gets (appendUpstreamHead: the
// same hop-by-hop rules, plugin edits and Kong's X-Forwarded-*, Via,
// X-Kong-Request-Id); the path is the client's, as nginx's grpc_pass
// sends it (Kong forbids strip_path on gRPC routes). The answer's body is
// streamed back with its trailers. The client's grpc-timeout goes to the
// upstream as any header does: neither nginx nor Kong reads it.
func (s *Server) forwardGRPC(ctx *fasthttp.RequestCtx, st *reqState, up upstreamCall) {
	svc := up.route.svc
	if svc.upstream != 0 {
		s.forwardGRPCBalanced(ctx, st, up)
		return
	}
	if err := s.tryGRPC(ctx, st, up, svc.addr); err != nil {
		s.respondGRPCFailure(ctx, st, svc, err)
	}
}

// forwardGRPCBalanced is forwardGRPC for a service behind an upstream:
// each try picks an address as forwardBalanced does, with the target's
// host as :authority (Kong's set_host_header sets it with set_authority).
// A try is repeated on another address only when its connection could
// not be opened: a gRPC request is a POST, and nginx does not send a
// non-idempotent request twice (grpc_next_upstream error timeout).
func (s *Server) forwardGRPCBalanced(ctx *fasthttp.RequestCtx, st *reqState, up upstreamCall) {
	bs, key, ok := s.beginBalanced(ctx, st, &up)
	if !ok {
		return
	}
	defer balancedPool.Put(bs)
	svc := up.route.svc
	var lastErr error
	for try := 0; ; try++ {
		addr, err := up.live.Pick(&bs.h, key)
		if err != nil {
			s.respondNoAddress(ctx, st, svc, try, lastErr)
			return
		}
		up.hostHeader = addr.HostHeader(svc.protocol == "grpcs")
		err = s.tryGRPC(ctx, st, up, addr.Dial)
		if errors.Is(err, errBadHeader) || err != nil && h2bridge.Context(ctx).Err() != nil {
			up.live.Done(&bs.h, balancer.Answered, 0) // nothing sent, or the client left: no fault of the target
		} else {
			up.live.Done(&bs.h, outcomeOf(err), ctx.Response.StatusCode())
		}
		if err == nil {
			if len(bs.cookie) > 0 {
				ctx.Response.Header.Add("Set-Cookie", string(bs.cookie))
			}
			return
		}
		lastErr = err
		var ce *grpcup.ConnectError
		if try >= svc.retries || !errors.As(err, &ce) {
			s.respondGRPCFailure(ctx, st, svc, err)
			return
		}
	}
}

// errGRPCReadTimeout is a try whose upstream sent nothing for the
// service's read_timeout: a timeout, answered 504.
var errGRPCReadTimeout error = grpcReadTimeout{}

type grpcReadTimeout struct{}

func (grpcReadTimeout) Error() string   { return "upstream read timed out" }
func (grpcReadTimeout) Timeout() bool   { return true }
func (grpcReadTimeout) Temporary() bool { return false }

// errBadHeader marks a try not sent for a header name nginx refuses.
var errBadHeader = errors.New("bad header name")

// tryGRPC sends the request to dial and, when the upstream answered,
// leaves its answer in ctx.Response (the body streaming on). The
// service's connect and write timeouts bound the connection, its
// read_timeout each wait for the upstream; a client that resets its
// stream cancels the request upstream.
func (s *Server) tryGRPC(ctx *fasthttp.RequestCtx, st *reqState, up upstreamCall, dial string) error {
	svc := up.route.svc
	cl := int64(ctx.Request.Header.ContentLength())
	st.head = s.appendUpstreamHead(st.head[:0], ctx, st, up, cl)
	if st.badHeader {
		return errBadHeader
	}
	rctx, watch := grpcup.NewWatch(h2bridge.Context(ctx), svc.read)
	req, err := s.grpcRequest(ctx, st, rctx, watch, up, dial, cl)
	if err != nil {
		watch.Stop()
		return err
	}
	sent := time.Now()
	resp, err := s.grpc.RoundTrip(req, grpcup.Settings{TLS: svc.tls, ServerName: hostOnly(req.Host), Connect: svc.connect, Write: svc.write})
	received := time.Now()
	if err != nil {
		timedOut := grpcup.TimedOut(rctx, err)
		watch.Stop()
		if timedOut {
			return errGRPCReadTimeout
		}
		return err
	}
	out := &ctx.Response
	out.SetStatusCode(resp.StatusCode)
	for k, vs := range resp.Header {
		if k == "Content-Length" {
			continue
		}
		for _, v := range vs {
			out.Header.Add(k, v)
		}
	}
	out.SetBodyStream(grpcup.Body{Resp: resp, Watch: watch}, -1)
	s.setProxiedResponseHeaders(ctx, st, sent, received)
	// Kong's outbound Via names the upstream's HTTP version: 2 for gRPC.
	st.buf = appendList(st.buf[:0], []byte(resp.Header.Get("Via")))
	out.Header.SetCanonical(hdrVia, appendList(st.buf, s.via2))
	return nil
}

// respondGRPCFailure answers a request no upstream answered: a client
// that went away gets nothing (nginx's 499), anything else is the
// upstream failing.
func (s *Server) respondGRPCFailure(ctx *fasthttp.RequestCtx, st *reqState, svc *service, err error) {
	switch {
	case errors.Is(err, errBadHeader):
		s.respondBodyError(ctx, st, errBadHeaderName)
	case h2bridge.Context(ctx).Err() != nil:
		ctx.Response.Reset()
		ctx.Response.SetStatusCode(499)
	default:
		s.respondUpstreamError(ctx, st, svc, err)
	}
}

// hostOnly is a Host header's host, the SNI nginx sends (grpc_ssl_name
// $upstream_host).
func hostOnly(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return strings.Trim(hostport, "[]")
}

// grpcRequest is the HTTP/2 request for a gRPC upstream at dial, from the
// head appendUpstreamHead built; its body is the client's, each read of
// it progress for watch.
func (s *Server) grpcRequest(ctx *fasthttp.RequestCtx, st *reqState, rctx context.Context, watch *grpcup.Watch, up upstreamCall, dial string, cl int64) (*http.Request, error) {
	line, rest, _ := bytes.Cut(st.head, []byte("\r\n"))
	method, _, _ := bytes.Cut(line, []byte{' '})
	url := grpcScheme(up.route.svc) + "://" + dial + string(up.rawPath) + string(up.query)
	req, err := http.NewRequestWithContext(rctx, string(method), url, nil)
	if err != nil {
		return nil, err
	}
	for len(rest) > 2 {
		var hl []byte
		hl, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		k, v, _ := bytes.Cut(hl, []byte(": "))
		switch string(k) {
		case "Host":
			req.Host = string(v)
		case "Content-Length", "Transfer-Encoding":
		default:
			req.Header.Add(string(k), string(v))
		}
	}
	if body := ctx.RequestBodyStream(); body != nil {
		req.Body, req.ContentLength = grpcup.RequestBody{R: body, Watch: watch}, cl
	} else if b := ctx.Request.Body(); len(b) > 0 {
		req.Body, req.ContentLength = grpcup.RequestBody{R: bytes.NewReader(b), Watch: watch}, int64(len(b))
	}
	return req, nil
}

// grpcPrune drops, on each swap, the HTTP/2 pools of grpc and grpcs
// services the new snapshot no longer has as they were (their TLS
// configuration, connect or write timeout changed, or the service is
// gone), and the pools no request used for grpcup.IdleTimeout.
type grpcPrune struct{ c *grpcup.Client }

// grpcPoolKey is what a snapshot's service fixes of its pool's settings
// (the server name comes from each request's Host).
type grpcPoolKey struct {
	tls            *tls.Config
	connect, write time.Duration
}

func (g grpcPrune) forget(snap *Snapshot) {
	if g.c.Pools() == 0 {
		return
	}
	keep := map[grpcPoolKey]bool{}
	for _, svc := range snap.services {
		if svc != nil && (svc.protocol == "grpc" || svc.protocol == "grpcs") {
			keep[grpcPoolKey{svc.tls, svc.connect, svc.write}] = true
		}
	}
	g.c.Prune(func(s grpcup.Settings) bool { return keep[grpcPoolKey{s.TLS, s.Connect, s.Write}] },
		time.Now().Add(-grpcup.IdleTimeout))
}
