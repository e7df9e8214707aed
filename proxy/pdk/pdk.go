// Package pdk is what a plugin sees of one request and its response, in the
// spirit of Kong's PDK (kong.request, kong.service.request, kong.response,
// kong.client): an interface of the project's own, so the plugins in
// proxy/plugins run unchanged on any listener (HTTP/1.1 on fasthttp today,
// HTTP/2 later) and never touch a transport's types.
//
// It owns only types and interfaces: no state, no I/O, no imports of the
// proxy, the store or fasthttp (the entity types it hands out are plain
// data). Byte slices handed out are valid only during the hook call that
// got them; a plugin that keeps one must copy it.
package pdk

import (
	"net/netip"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
)

// Exchange is one request on its way through the plugin phases.
type Exchange interface {
	// The client's request as received (kong.request).

	// Method is the request method, e.g. GET.
	Method() []byte
	// Path is the normalised request path, without the query.
	Path() []byte
	// RawQuery is the query string as received, without its "?".
	RawQuery() []byte
	// RequestURI is the path and query as the client sent them, not
	// normalised (kong.request.get_path_with_query).
	RequestURI() []byte
	// HTTPVersion is the request's protocol version: "1.0", "1.1" or
	// "2.0" (kong.request.get_http_version).
	HTTPVersion() string
	// QueryArg is the first value of the query argument name (decoded)
	// and how many times the argument appears.
	QueryArg(name string) (value []byte, count int)
	// Header is the first value of the request header name (any case)
	// and how many headers of that name the request has.
	Header(name string) (value []byte, count int)
	// VisitHeaders calls fn for every request header in order.
	VisitHeaders(fn func(name, value []byte))
	// Body is the whole request body, read (once) on first use.
	Body() ([]byte, error)
	// ContentLength is the declared length, -1 when chunked or absent.
	ContentLength() int
	// Scheme is "http" or "https".
	Scheme() string
	// Host is the request's host, lower case, without port.
	Host() []byte
	// ClientIP is the address of the client's connection.
	ClientIP() netip.Addr
	// Port is the port of the listener the client connected to
	// (kong.request.get_port).
	Port() int
	// RouteID and ServiceID name what the request matched.
	RouteID() string
	ServiceID() string
	// Route and Service are the entities the request matched
	// (kong.router.get_route, get_service); Service is nil without one.
	// They are the snapshot's: read them, never change them.
	Route() *entity.Route
	Service() *entity.Service
	// URICaptures calls fn for each group of the matched path regex that
	// took part in the match (the router's uri_captures), in order: its
	// index from 1 and its name ("" for an unnamed group). A route
	// matched by prefix has none.
	URICaptures(fn func(index int, name string, value []byte))

	// Changes to the request sent upstream (kong.service.request). Header
	// changes replace the client's headers of that name.

	SetUpstreamHeader(name, value string)
	AddUpstreamHeader(name, value string)
	ClearUpstreamHeader(name string)
	// SetUpstreamQuery replaces the query string sent upstream ("" for
	// none), without its "?".
	SetUpstreamQuery(raw string)
	// SetUpstreamBody replaces the body sent upstream; contentType, when
	// not "", replaces its Content-Type.
	SetUpstreamBody(body []byte, contentType string)
	// SetUpstreamMethod replaces the method sent upstream.
	SetUpstreamMethod(method string)
	// SetUpstreamPath replaces the path sent upstream (the whole path,
	// the service's path not added).
	SetUpstreamPath(path string)

	// The response (kong.response): in the access phase it is empty
	// until Exit or Error; in the header and body filters it is the
	// upstream's (or an exit's) answer.

	// Error answers with Kong's error body for message, in the format
	// the client's Accept asks for (kong.response.error).
	Error(status int, message string)
	// Exit answers with status and body as given (kong.response.exit);
	// contentType may be "".
	Exit(status int, body []byte, contentType string)
	Status() int
	ResponseHeader(name string) []byte
	// VisitResponseHeaders calls fn for every response header in order.
	VisitResponseHeaders(fn func(name, value []byte))
	SetResponseHeader(name, value string)
	AddResponseHeader(name, value string)
	ClearResponseHeader(name string)
	// ResponseBody is the buffered answer's body, nil when it streams.
	ResponseBody() []byte
	SetResponseBody(body []byte)

	// The authenticated client (kong.client).

	// Authenticate sets who the request is: a consumer, a credential or
	// both (kong.client.authenticate).
	Authenticate(consumer *Consumer, credential *Credential)
	Consumer() *Consumer
	Credential() *Credential

	// Value and SetValue keep a plugin's state from one phase to the
	// next of this request (kong.ctx.plugin); key is the plugin's own.
	Value(key any) any
	SetValue(key, value any)

	// Log describes the finished exchange for the log phase (the values
	// behind kong.log.serialize); it allocates nothing.
	Log() LogInfo
}

// LogInfo is what the log phase knows of an exchange beyond its request
// and response.
type LogInfo struct {
	RouteID, RouteName string
	// ServiceID, ServiceName and ServiceHost are "" without a service.
	ServiceID, ServiceName, ServiceHost string
	// Source is kong.response.get_source's: "service" when the upstream
	// answered, "exit" when a plugin or the gateway did.
	Source string
	// StartedAt is when the request's first byte was read.
	StartedAt time.Time
	// KongLatency is the time spent before the request went upstream (or
	// until the gateway's own answer); ProxyLatency is the wait for the
	// upstream's answer, -1 when nothing went upstream; RequestLatency is
	// the whole exchange so far (Kong's latencies.kong, .proxy, .request).
	KongLatency, ProxyLatency, RequestLatency time.Duration
	// RequestSize and ResponseSize are the bytes received and sent, head
	// and body (nginx's $request_length and $bytes_sent); a streamed
	// body of unknown length counts 0.
	RequestSize, ResponseSize int64
	// Tries are the balancer's attempts, in order, for a service behind
	// an upstream; nil otherwise.
	Tries []Try
}

// Try is one attempt of the balancer, Kong's balancer_data.tries entry.
type Try struct {
	Start   time.Time     // when the balancer began picking (balancer_start)
	Latency time.Duration // the time picking took (balancer_latency)
	IP      string
	Port    int
	// State is "failed" for an attempt that failed, with Code 502 (the
	// connection failed), 504 (it timed out) or, for the last attempt
	// once the retries ran out, the answer's status; else "" and 0.
	State string
	Code  int
}

// Consumer is who a request is authenticated as.
type Consumer struct {
	ID       string
	Username string // "" when unset
	CustomID string // "" when unset
	// Groups are the consumer's acl groups, sorted.
	Groups []string
}

// Credential is what a request authenticated with.
type Credential struct {
	ID         string
	ConsumerID string
}
