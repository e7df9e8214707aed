package proxy

import (
	"bytes"
	"errors"
	"net"
	"strconv"

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
)

// connectError marks a failure to open a connection to the upstream: the
// request was never sent, so it may be retried whatever its method.
type connectError struct{ err error }

func (e *connectError) Error() string { return "connect upstream: " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// upstreamErrorStatus is the one place an upstream failure becomes a status
// and message: timeouts (connect or read) are 504, anything else 502 (an
// answer over maxResponseBody included).
func upstreamErrorStatus(err error) (int, string) {
	if isTimeout(err) {
		return fasthttp.StatusGatewayTimeout, msgTimeout
	}
	return fasthttp.StatusBadGateway, msgBadResponse
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) ||
		errors.As(err, &ne) && ne.Timeout()
}

// logUpstreamError logs a failed upstream request: at warn level when the
// operator has something to fix (an upstream answering more than the
// proxy buffers), else at debug level, since a dead upstream can fail
// every request.
func (s *Server) logUpstreamError(err error, svc *service) {
	e := s.log.Debug()
	if errors.Is(err, errResponseTooLarge) {
		e = s.log.Warn()
	}
	if e.Enabled() {
		e.Err(err).Str("service", svc.id).Str("upstream", svc.addr).Msg("proxy upstream failed")
	}
}

// retryable reports whether a failed try may be repeated: always when the
// connection could not be opened, otherwise only for idempotent methods
// (nginx's proxy_next_upstream error timeout invalid_header, without
// non_idempotent).
func retryable(err error, method []byte) bool {
	var ce *connectError
	if errors.As(err, &ce) {
		return true
	}
	if errors.Is(err, errResponseTooLarge) {
		return false // the next try would get the same answer
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
)

// negotiate picks the error body type from Accept, JSON unless the client
// prefers text/plain or text/html.
func negotiate(accept []byte) bodyType {
	best, bestQ := bodyJSON, -1.0
	for len(accept) > 0 {
		var part []byte
		part, accept, _ = bytes.Cut(accept, []byte{','})
		media, params, _ := bytes.Cut(part, []byte{';'})
		t, ok := mediaBodyType(bytes.ToLower(bytes.TrimSpace(media)))
		if !ok {
			continue
		}
		if q := qValue(params); q > bestQ {
			best, bestQ = t, q
		}
	}
	return best
}

func mediaBodyType(media []byte) (bodyType, bool) {
	switch string(media) {
	case "application/json", "application/*", "*/*":
		return bodyJSON, true
	case "text/plain", "text/*":
		return bodyText, true
	case "text/html":
		return bodyHTML, true
	}
	return bodyJSON, false
}

func qValue(params []byte) float64 {
	for len(params) > 0 {
		var p []byte
		p, params, _ = bytes.Cut(params, []byte{';'})
		k, v, ok := bytes.Cut(bytes.TrimSpace(p), []byte{'='})
		if ok && string(bytes.ToLower(k)) == "q" {
			if q, err := strconv.ParseFloat(string(v), 64); err == nil {
				return q
			}
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
	default:
		dst = append(dst, "{\n  \"message\":\""...)
		dst = append(dst, msg...)
		dst = append(dst, "\",\n  \"request_id\":\""...)
		dst = append(dst, requestID...)
		return append(dst, "\"\n}"...), "application/json; charset=utf-8"
	}
}
