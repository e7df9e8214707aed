package proxy

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// exchange is the proxy's pdk.Exchange over fasthttp: what plugin hooks
// see of a request. It lives in the pooled reqState and is reset per
// request, so a route without plugins never touches it.
type exchange struct {
	s   *Server
	ctx *fasthttp.RequestCtx
	st  *reqState
	up  upstreamCall

	consumer   *pdk.Consumer
	credential *pdk.Credential
	values     []exchangeValue

	// What plugins changed of the request sent upstream; the zero value
	// changes nothing.
	method   []byte
	query    []byte // "?…"
	querySet bool
	path     []byte
	pathSet  bool
	body     []byte
	bodySet  bool

	// The client's body, once a plugin read it.
	clientBody    []byte
	clientBodyErr *bodyError
	bodyRead      bool

	collected []*PluginInstance // instances whose later phases run (phases.go)
	tries     []pdk.Try         // the balancer's attempts (tries.go)
	exited    bool              // a hook answered with Error or Exit
	// Response header changes made in the rewrite and access phases wait
	// here and apply to whatever answer follows (an exit's or the
	// upstream's), as ngx.header does in Kong.
	early     bool
	respEdits HeaderEdits

	// When the request went upstream and its answer came (zero when the
	// gateway answered itself), for the log phase (exchange_log.go).
	sent, received time.Time
}

type exchangeValue struct{ key, value any }

var _ pdk.Exchange = (*exchange)(nil)

// reset readies x for a request; buffers are kept.
func (x *exchange) reset(s *Server, ctx *fasthttp.RequestCtx, st *reqState, up upstreamCall) {
	clear(x.values)
	clear(x.collected)
	x.respEdits.reset()
	*x = exchange{s: s, ctx: ctx, st: st, up: up, respEdits: x.respEdits,
		values: x.values[:0], collected: x.collected[:0], tries: x.tries[:0],
		method: x.method[:0], query: x.query[:0], path: x.path[:0], body: x.body[:0]}
}

func (x *exchange) Method() []byte   { return x.ctx.Method() }
func (x *exchange) Path() []byte     { return x.up.path }
func (x *exchange) RawQuery() []byte { return bytes.TrimPrefix(x.up.query, []byte("?")) }
func (x *exchange) Host() []byte     { return x.up.host }
func (x *exchange) RouteID() string  { return x.up.route.id }

// RequestURI is the request line's target; an absolute-form target
// ("http://host/p?q") is given from its path, as nginx's $request_uri.
func (x *exchange) RequestURI() []byte {
	uri := x.ctx.RequestURI()
	if len(uri) > 0 && uri[0] != '/' {
		if i := bytes.Index(uri, []byte("://")); i >= 0 {
			rest := uri[i+3:]
			if j := bytes.IndexAny(rest, "/?"); j >= 0 {
				return rest[j:]
			}
			return nil
		}
	}
	return uri
}

func (x *exchange) HTTPVersion() string {
	if x.ctx.Request.Header.IsHTTP11() {
		return "1.1"
	}
	return "1.0"
}

func (x *exchange) Route() *entity.Route { return x.up.route.e }

func (x *exchange) Service() *entity.Service {
	if x.up.route.svc == nil {
		return nil
	}
	return &x.up.route.svc.e
}

// Port is the local port of the client's connection.
func (x *exchange) Port() int {
	if ta, ok := x.ctx.LocalAddr().(*net.TCPAddr); ok {
		return ta.Port
	}
	return 0
}

// URICaptures runs the matched path regex again (the router keeps no
// captures, so a plain route pays nothing for them), as uriCapture does.
func (x *exchange) URICaptures(fn func(index int, name string, value []byte)) {
	if x.up.matcher == nil {
		return
	}
	path := x.up.path
	for _, re := range x.up.matcher.regexes {
		loc := re.FindSubmatchIndex(path)
		if loc == nil {
			continue
		}
		names := re.SubexpNames()
		for g := 1; g < len(names); g++ {
			if loc[2*g] >= 0 {
				fn(g, names[g], path[loc[2*g]:loc[2*g+1]])
			}
		}
		return
	}
}

func (x *exchange) ServiceID() string {
	if x.up.route.svc == nil {
		return ""
	}
	return x.up.route.svc.id
}

func (x *exchange) QueryArg(name string) ([]byte, int) {
	var first []byte
	n := 0
	for k, v := range x.ctx.QueryArgs().All() {
		if string(k) == name {
			if n == 0 {
				first = v
			}
			n++
		}
	}
	return first, n
}

func (x *exchange) Header(name string) ([]byte, int) {
	var first []byte
	n := 0
	for k, v := range x.ctx.Request.Header.All() {
		if strings.EqualFold(string(k), name) {
			if n == 0 {
				first = v
			}
			n++
		}
	}
	return first, n
}

func (x *exchange) VisitHeaders(fn func(name, value []byte)) {
	for k, v := range x.ctx.Request.Header.AllInOrder() {
		fn(k, v)
	}
}

func (x *exchange) Body() ([]byte, error) {
	if !x.bodyRead {
		x.bodyRead = true
		// A plugin reading the body has it read whole, even on a route
		// with request_buffering off. One spooled to a file is not there
		// to read, as Kong's kong.request.get_raw_body gives nothing for a
		// body past client_body_buffer_size.
		if x.clientBodyErr = x.s.readBody(x.ctx, x.st); x.clientBodyErr == nil {
			x.clientBody = x.st.reqBody.inMemory()
		}
	}
	if x.clientBodyErr != nil {
		return nil, x.clientBodyErr
	}
	return x.clientBody, nil
}

func (x *exchange) ContentLength() int {
	if n := x.ctx.Request.Header.ContentLength(); n >= 0 {
		return n
	}
	return -1
}

func (x *exchange) Scheme() string {
	if x.ctx.IsTLS() {
		return "https"
	}
	return "http"
}

func (x *exchange) ClientIP() netip.Addr {
	if ta, ok := x.ctx.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

func (x *exchange) SetUpstreamHeader(name, value string) { x.st.edits.Set(name, value) }
func (x *exchange) AddUpstreamHeader(name, value string) { x.st.edits.Add(name, value) }
func (x *exchange) ClearUpstreamHeader(name string)      { x.st.edits.Remove(name) }

func (x *exchange) SetUpstreamQuery(raw string) {
	x.query, x.querySet = append(append(x.query[:0], '?'), raw...), true
}

func (x *exchange) SetUpstreamBody(body []byte, contentType string) {
	x.body, x.bodySet = append(x.body[:0], body...), true
	if contentType != "" {
		x.st.edits.Set("Content-Type", contentType)
	}
}

func (x *exchange) SetUpstreamMethod(method string) { x.method = append(x.method[:0], method...) }

func (x *exchange) SetUpstreamPath(path string) {
	x.path, x.pathSet = append(x.path[:0], path...), true
}

func (x *exchange) Error(status int, message string) {
	x.exited = true
	x.s.respondError(x.ctx, x.st, status, message)
}

func (x *exchange) Exit(status int, body []byte, contentType string) {
	x.exited = true
	resp := &x.ctx.Response
	resp.Reset()
	resp.SetStatusCode(status)
	if contentType != "" {
		resp.Header.SetContentType(contentType)
	}
	resp.SetBody(body)
	x.s.setKongResponseHeaders(x.ctx, x.st)
}

func (x *exchange) Status() int                       { return x.ctx.Response.StatusCode() }
func (x *exchange) ResponseHeader(name string) []byte { return x.ctx.Response.Header.Peek(name) }
func (x *exchange) SetResponseBody(body []byte)       { x.ctx.Response.SetBody(body) }
func (x *exchange) Consumer() *pdk.Consumer           { return x.consumer }
func (x *exchange) Credential() *pdk.Credential       { return x.credential }

func (x *exchange) ResponseBody() []byte {
	if x.ctx.Response.IsBodyStream() {
		return nil
	}
	return x.ctx.Response.Body()
}

func (x *exchange) Authenticate(c *pdk.Consumer, cred *pdk.Credential) {
	x.consumer, x.credential = c, cred
}

func (x *exchange) Value(key any) any {
	for _, v := range x.values {
		if v.key == key {
			return v.value
		}
	}
	return nil
}

func (x *exchange) SetValue(key, value any) {
	for i := range x.values {
		if x.values[i].key == key {
			x.values[i].value = value
			return
		}
	}
	x.values = append(x.values, exchangeValue{key, value})
}

// upstreamMethod is the method sent upstream.
func (x *exchange) upstreamMethod() []byte {
	if len(x.method) > 0 {
		return x.method
	}
	return x.ctx.Method()
}

// rewriteUpstream applies the plugins' changes to the upstream request
// line: st.uri's path, and the method and query ("?…") to send.
func (x *exchange) rewriteUpstream(st *reqState, query []byte) (method, newQuery []byte) {
	method = x.ctx.Method()
	if len(x.method) > 0 {
		method = x.method
	}
	if x.pathSet {
		st.uri = append(st.uri[:0], x.path...)
	}
	if x.querySet {
		query = nil
		if len(x.query) > 1 {
			query = x.query
		}
	}
	return method, query
}

// prepareBody sets st.reqBody to what goes upstream: a plugin's
// replacement, the client's as a plugin read it, or the client's, read
// whole now or streamed as the route says (reqbody.go).
func (s *Server) prepareBody(ctx *fasthttp.RequestCtx, st *reqState, r *route) *bodyError {
	if st.plugged {
		switch x := &st.x; {
		case x.bodySet:
			st.reqBody.reset()
			st.reqBody.mem, st.reqBody.size = x.body, int64(len(x.body))
			return nil
		case x.bodyRead:
			return x.clientBodyErr
		}
	}
	if r.streamRequest {
		s.streamBody(ctx, st)
		return nil
	}
	return s.readBody(ctx, st)
}

// Error makes a body error a plugin can see (pdk.Exchange.Body).
func (e *bodyError) Error() string { return e.msg }

func (x *exchange) SetResponseHeader(name, v string) {
	if x.early {
		x.respEdits.Set(name, v)
		return
	}
	x.ctx.Response.Header.Set(name, v)
}

func (x *exchange) AddResponseHeader(name, v string) {
	if x.early {
		x.respEdits.Add(name, v)
		return
	}
	x.ctx.Response.Header.Add(name, v)
}

func (x *exchange) ClearResponseHeader(name string) {
	if x.early {
		x.respEdits.Remove(name)
		return
	}
	x.ctx.Response.Header.Del(name)
}

// applyEarlyHeaders applies the rewrite and access phases' response
// header changes to the answer, once it is known.
func (x *exchange) applyEarlyHeaders() {
	x.early = false
	h := &x.ctx.Response.Header
	for _, op := range x.respEdits.ops {
		name, value := x.respEdits.bytes(op.name), x.respEdits.bytes(op.value)
		switch op.kind {
		case headerSet:
			h.SetBytesKV(name, value)
		case headerAdd:
			h.AddBytesKV(name, value)
		case headerRemove:
			h.DelBytes(name)
		}
	}
}
