package proxy

import (
	"time"

	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// statusLineSize is "HTTP/1.1 200 OK\r\n" and the blank line after the
// headers, what nginx's $bytes_sent counts beside headers and body.
const statusLineSize = len("HTTP/1.1 200 OK\r\n") + 2

// Log fills in what the log phase knows of the exchange, computed from
// the request state without allocating.
func (x *exchange) Log() pdk.LogInfo {
	r := x.up.route
	start := x.ctx.Time()
	now := time.Now()
	info := pdk.LogInfo{RouteID: r.id, RouteName: r.name, StartedAt: start, RequestLatency: now.Sub(start)}
	if r.svc != nil {
		info.ServiceID, info.ServiceName, info.ServiceHost = r.svc.id, r.svc.name, r.svc.host
	}
	if x.sent.IsZero() {
		info.Source = "exit"
		info.KongLatency = info.RequestLatency
		info.ProxyLatency = -1
	} else {
		info.Source = "service"
		info.KongLatency = x.sent.Sub(start)
		info.ProxyLatency = x.received.Sub(x.sent)
	}
	info.Tries = x.tries
	info.RequestSize = x.requestSize()
	info.ResponseSize = x.responseSize()
	return info
}

// requestSize is the request line, headers and body as received.
func (x *exchange) requestSize() int64 {
	req := &x.ctx.Request
	n := len(req.Header.Method()) + 1 + len(x.ctx.RequestURI()) + len(" HTTP/1.1\r\n") +
		len(req.Header.RawHeaders()) + 2
	if cl := req.Header.ContentLength(); cl > 0 {
		n += cl
	} else if !req.IsBodyStream() {
		n += len(req.Body())
	}
	return int64(n)
}

// responseSize is the answer's status line, headers and body as they
// will be sent.
func (x *exchange) responseSize() int64 {
	resp := &x.ctx.Response
	n := statusLineSize
	for k, v := range resp.Header.All() {
		n += len(k) + len(v) + 4
	}
	if resp.IsBodyStream() {
		if cl := resp.Header.ContentLength(); cl > 0 {
			n += cl
		}
	} else {
		n += len(resp.Body())
	}
	return int64(n)
}

func (x *exchange) VisitResponseHeaders(fn func(name, value []byte)) {
	for k, v := range x.ctx.Response.Header.All() {
		fn(k, v)
	}
}
