package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/grapevine-gw/grapevine/proxy/grpcup"
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
// streamed back with its trailers.
func (s *Server) forwardGRPC(ctx *fasthttp.RequestCtx, st *reqState, up upstreamCall) {
	svc := up.route.svc
	cl := int64(ctx.Request.Header.ContentLength())
	st.head = s.appendUpstreamHead(st.head[:0], ctx, st, up, cl)
	if st.badHeader {
		s.respondBodyError(ctx, st, errBadHeaderName)
		return
	}
	req, err := s.grpcRequest(ctx, st, up, cl)
	if err != nil {
		s.respondUpstreamError(ctx, st, svc, err)
		return
	}
	sent := time.Now()
	resp, err := s.grpc.RoundTrip(req, svc.tls)
	received := time.Now()
	if err != nil {
		s.respondUpstreamError(ctx, st, svc, err)
		return
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
	out.SetBodyStream(grpcup.Body{Resp: resp}, -1)
	s.setProxiedResponseHeaders(ctx, st, sent, received)
	// Kong's outbound Via names the upstream's HTTP version: 2 for gRPC.
	st.buf = appendList(st.buf[:0], []byte(resp.Header.Get("Via")))
	out.Header.SetCanonical(hdrVia, appendList(st.buf, s.via2))
}

// grpcRequest is the HTTP/2 request for a gRPC upstream, from the head
// appendUpstreamHead built.
func (s *Server) grpcRequest(ctx *fasthttp.RequestCtx, st *reqState, up upstreamCall, cl int64) (*http.Request, error) {
	svc := up.route.svc
	line, rest, _ := bytes.Cut(st.head, []byte("\r\n"))
	method, _, _ := bytes.Cut(line, []byte{' '})
	url := grpcScheme(svc) + "://" + svc.addr + string(up.rawPath) + string(up.query)
	req, err := http.NewRequestWithContext(context.Background(), string(method), url, nil)
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
		req.Body, req.ContentLength = io.NopCloser(body), cl
	} else if b := ctx.Request.Body(); len(b) > 0 {
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	}
	return req, nil
}
