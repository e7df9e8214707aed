package proxy

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Kong's messages for responses the proxy generates itself (§2.9).
const (
	msgNoRoute     = "no Route matched with those values"
	msgNoService   = "no Service found with those values"
	msgUseHTTPS    = "Please use HTTPS protocol"
	msgUseHTTP2    = "Please use HTTP2 protocol"
	msgNotGRPC     = "Non-gRPC request matched gRPC route"
	msgBadResponse = "An invalid response was received from the upstream server"
	msgTimeout     = "The upstream server is timing out"
	msgUnexpected  = "An unexpected error occurred"

	// Answers to requests nginx refuses before Kong sees them, through
	// Kong's error handler (kong/error_handlers.lua).
	msgBadRequest       = "Bad request"
	msgMethodNotAllowed = "Method not allowed"
	msgRequestTimeout   = "Request timeout"
	msgPayloadTooLarge  = "Payload too large"
	msgURITooLong       = "URI too long"
	msgHeaderTooLarge   = "Request header or cookie too large"
	msgVersion          = "HTTP Version Not Supported"
)

// connectError marks a failure to open a connection to the upstream: the
// request was never sent, so it may be retried whatever its method.
type connectError struct{ err error }

func (e *connectError) Error() string { return "connect upstream: " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// respondUpstreamError is the one place an upstream failure becomes an
// answer: a host that cannot be resolved as Kong's balancer answers it
// (see dnsFailure), through kong.response.error; timeouts (connect or
// read) 504 and anything else 502 (an answer over maxResponseBody
// included) as nginx raises them, through Kong's error handler.
func (s *Server) respondUpstreamError(ctx *fasthttp.RequestCtx, st *reqState, svc *service, err error) {
	s.logUpstreamError(err, svc)
	if status, msg, ok := dnsFailure(err, svc.host); ok {
		s.respondError(ctx, st, status, msg)
		return
	}
	if isTimeout(err) {
		s.respondNginxError(ctx, st, fasthttp.StatusGatewayTimeout, msgTimeout)
		return
	}
	s.respondNginxError(ctx, st, fasthttp.StatusBadGateway, msgBadResponse)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) ||
		errors.As(err, &ne) && ne.Timeout()
}

// logUpstreamError logs a failed upstream request at error level, as
// nginx logs an upstream it cannot reach: the operator has something to
// fix. A dead upstream can fail every request, so lines are sampled per
// service (upstreamLogEvery), each saying how many were held back.
func (s *Server) logUpstreamError(err error, svc *service) {
	ok, dropped := s.upstreamLog.allow(svc.id, time.Now())
	if !ok {
		return
	}
	s.log.Error().Err(err).Str("service", svc.id).Str("upstream", svc.addr).Int64("similar_not_logged", dropped).
		Msg("proxy upstream failed")
}

// upstreamLogEvery is the least time between two upstream failure lines
// of one service.
const upstreamLogEvery = 5 * time.Second

// retryable reports whether a failed try may be repeated: always when the
// connection could not be opened, otherwise only for idempotent methods
// (nginx's proxy_next_upstream error timeout invalid_header, without
// non_idempotent).
func retryable(err error, method []byte) bool {
	var de *net.DNSError
	if errors.As(err, &de) {
		return false // Kong resolves once, before its tries
	}
	var ce *connectError
	if errors.As(err, &ce) {
		return true
	}
	var be *bodyReadError
	if errors.Is(err, errResponseTooLarge) || errors.As(err, &be) {
		return false // the answer had begun; nginx does not try another
	}
	return isIdempotent(method)
}

// isIdempotent follows nginx: everything but POST, LOCK and PATCH.
func isIdempotent(method []byte) bool {
	switch string(method) {
	case "POST", "LOCK", "PATCH":
		return false
	}
	return true
}

type bodyType uint8

const (
	bodyJSON bodyType = iota
	bodyText
	bodyHTML
	bodyXML
)

// bodyTypes maps the media types Kong knows to its error templates
// (MIME_TYPES in kong/tools/http.lua); "*/*" is the default, JSON.
var bodyTypes = map[string]bodyType{
	"application/json": bodyJSON,
	"application/*":    bodyJSON,
	"*/*":              bodyJSON,
	"text/plain":       bodyText,
	"text/*":           bodyText,
	"text/html":        bodyHTML,
	"application/xml":  bodyXML,
}

// parseBodyType reads an error_default_type value.
func parseBodyType(mediaType string) (bodyType, bool) {
	t, ok := bodyTypes[mediaType]
	return t, ok && mediaType != "*/*" && !strings.HasSuffix(mediaType, "/*")
}

// negotiate picks the error body type as Kong's get_response_type does:
// the first media type with the highest q; one Kong has no template for
// counts as JSON.
func negotiate(accept []byte) bodyType {
	best, bestQ := bodyJSON, 0.0
	for len(accept) > 0 {
		var part []byte
		part, accept, _ = bytes.Cut(accept, []byte{','})
		media, params, _ := bytes.Cut(part, []byte{';'})
		media = bytes.ToLower(bytes.TrimSpace(media))
		if !bytes.ContainsRune(media, '/') {
			continue
		}
		if q := qValue(params); q > bestQ {
			best, bestQ = bodyTypes[string(media)], q // a missing type is bodyJSON
		}
	}
	return best
}

// negotiateNginx picks the body type of an error nginx raised, which Kong's
// error handler (kong/error_handlers.lua) answers from Accept, else the
// request's Content-Type, else error_default_type.
func (s *Server) negotiateNginx(h *fasthttp.RequestHeader) bodyType {
	if accept := h.Peek("Accept"); accept != nil {
		return negotiate(accept)
	}
	if ct := h.ContentType(); len(ct) > 0 {
		return negotiate(ct)
	}
	return s.defaultBodyType
}

func qValue(params []byte) float64 {
	for len(params) > 0 {
		var p []byte
		p, params, _ = bytes.Cut(params, []byte{';'})
		k, v, ok := bytes.Cut(bytes.TrimSpace(p), []byte{'='})
		if ok && string(bytes.ToLower(bytes.TrimSpace(k))) == "q" {
			if q, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64); err == nil {
				return q
			}
			return 0
		}
	}
	return 1
}

// appendErrorBody renders Kong's error templates (kong/tools/http.lua).
func appendErrorBody(dst []byte, t bodyType, msg string, requestID []byte) ([]byte, string) {
	switch t {
	case bodyText:
		dst = append(dst, msg...)
		dst = append(dst, "\nrequest_id: "...)
		dst = append(dst, requestID...)
		return append(dst, '\n'), "text/plain; charset=utf-8"
	case bodyHTML:
		dst = append(dst, "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n"+
			"    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    <p>"...)
		dst = append(dst, msg...)
		dst = append(dst, ".</p>\n    <p>request_id: "...)
		dst = append(dst, requestID...)
		return append(dst, "</p>\n  </body>\n</html>\n"...), "text/html; charset=utf-8"
	case bodyXML:
		dst = append(dst, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>"...)
		dst = append(dst, msg...)
		dst = append(dst, "</message>\n  <requestid>"...)
		dst = append(dst, requestID...)
		return append(dst, "</requestid>\n</error>\n"...), "application/xml; charset=utf-8"
	default:
		dst = append(dst, "{\n  \"message\":\""...)
		dst = append(dst, msg...)
		dst = append(dst, "\",\n  \"request_id\":\""...)
		dst = append(dst, requestID...)
		return append(dst, "\"\n}"...), "application/json; charset=utf-8"
	}
}

// parseErrorStatus is the one place a request fasthttp could not read
// becomes a status and message, as nginx and Kong's error handler answer
// it: headers over the buffer are 400 (nginx's 494), a body over the
// limit 413, a client too slow with its headers 408, the rest 400.
func parseErrorStatus(err error) (int, string) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small) || errors.Is(err, fasthttp.ErrSmallReadBuffer):
		return fasthttp.StatusBadRequest, msgHeaderTooLarge
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, msgPayloadTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return fasthttp.StatusRequestTimeout, msgRequestTimeout
	}
	return fasthttp.StatusBadRequest, msgBadRequest
}
