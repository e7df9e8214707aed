package plugins

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"

	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// logRecord is the shape of Kong's kong.log.serialize (kong/pdk/log.lua,
// http subsystem) as the logging plugins send it. Route and service
// carry the fields the proxy keeps of them (id, name; host for the
// service), not the whole entity. upstream_uri is left out: the proxy
// does not hand it to plugins yet.
type logRecord struct {
	Request             logRequest     `json:"request"`
	Response            logResponse    `json:"response"`
	Latencies           logLatencies   `json:"latencies"`
	Route               *logRoute      `json:"route,omitempty"`
	Service             *logService    `json:"service,omitempty"`
	Consumer            *logConsumer   `json:"consumer,omitempty"`
	AuthenticatedEntity *logCredential `json:"authenticated_entity,omitempty"`
	ClientIP            string         `json:"client_ip"`
	StartedAt           int64          `json:"started_at"`
	Source              string         `json:"source"`
	Workspace           string         `json:"workspace_name"`
	UpstreamStatus      string         `json:"upstream_status"`
	Tries               []logTry       `json:"tries,omitempty"`
}

// logTry is one of the balancer's attempts (Kong's balancer_data.tries:
// kong/init.lua balancer phase, runloop/handler.lua header_filter).
type logTry struct {
	BalancerStart     int64  `json:"balancer_start"`
	BalancerStartNs   int64  `json:"balancer_start_ns"`
	BalancerLatency   int64  `json:"balancer_latency"`
	BalancerLatencyNs int64  `json:"balancer_latency_ns"`
	IP                string `json:"ip"`
	Port              int    `json:"port"`
	State             string `json:"state,omitempty"`
	Code              int    `json:"code,omitempty"`
}

type logRequest struct {
	ID          string         `json:"id"`
	URI         string         `json:"uri"`
	URL         string         `json:"url"`
	QueryString map[string]any `json:"querystring"`
	Method      string         `json:"method"`
	Headers     map[string]any `json:"headers"`
	Size        int64          `json:"size"`
}

type logResponse struct {
	Status  int            `json:"status"`
	Headers map[string]any `json:"headers"`
	Size    int64          `json:"size"`
}

// logLatencies are in milliseconds; proxy is -1 when nothing went
// upstream.
type logLatencies struct {
	Kong    int64 `json:"kong"`
	Proxy   int64 `json:"proxy"`
	Request int64 `json:"request"`
	Receive int64 `json:"receive"`
}

type logRoute struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

type logService struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	Host string `json:"host"`
}

type logConsumer struct {
	ID       string `json:"id"`
	Username string `json:"username,omitempty"`
	CustomID string `json:"custom_id,omitempty"`
}

type logCredential struct {
	ID         string `json:"id"`
	ConsumerID string `json:"consumer_id"`
}

// serializeLog renders the exchange's record as JSON, Kong's
// kong.log.serialize: header names in lower case, a header or query
// argument seen more than once as a list, Authorization and
// Proxy-Authorization REDACTED.
func serializeLog(x pdk.Exchange) ([]byte, error) {
	info := x.Log()
	r := logRecord{
		ClientIP:  x.ClientIP().String(),
		StartedAt: info.StartedAt.UnixMilli(),
		Source:    "kong", // constants.RESPONSE_SOURCE.NAMES: exit and error are "kong"
		Workspace: "default",
		Latencies: logLatencies{Kong: info.KongLatency.Milliseconds(), Proxy: -1,
			Request: info.RequestLatency.Milliseconds()},
	}
	if info.ProxyLatency >= 0 {
		r.Latencies.Proxy = info.ProxyLatency.Milliseconds()
	}
	uri := string(x.RequestURI())
	host := string(x.Host())
	r.Request = logRequest{ID: string(x.ResponseHeader("X-Kong-Request-Id")), URI: uri,
		URL: x.Scheme() + "://" + host + uri, Method: string(x.Method()), Size: info.RequestSize,
		QueryString: queryMap(string(x.RawQuery())), Headers: map[string]any{}}
	x.VisitHeaders(func(name, value []byte) { addValue(r.Request.Headers, strings.ToLower(string(name)), string(value)) })
	for _, secret := range []string{"authorization", "proxy-authorization"} {
		if _, ok := r.Request.Headers[secret]; ok {
			r.Request.Headers[secret] = "REDACTED"
		}
	}
	r.Response = logResponse{Status: x.Status(), Size: info.ResponseSize, Headers: map[string]any{}}
	x.VisitResponseHeaders(func(name, value []byte) { addValue(r.Response.Headers, strings.ToLower(string(name)), string(value)) })
	if info.Source == "service" {
		r.Source = "upstream"
		r.UpstreamStatus = strconv.Itoa(r.Response.Status)
	}
	for _, t := range info.Tries {
		r.Tries = append(r.Tries, logTry{BalancerStart: t.Start.UnixMilli(), BalancerStartNs: t.Start.UnixNano(),
			BalancerLatency: t.Latency.Milliseconds(), BalancerLatencyNs: t.Latency.Nanoseconds(),
			IP: t.IP, Port: t.Port, State: t.State, Code: t.Code})
	}
	if info.RouteID != "" {
		r.Route = &logRoute{ID: info.RouteID, Name: info.RouteName}
	}
	if info.ServiceID != "" {
		r.Service = &logService{ID: info.ServiceID, Name: info.ServiceName, Host: info.ServiceHost}
	}
	if c := x.Consumer(); c != nil {
		r.Consumer = &logConsumer{ID: c.ID, Username: c.Username, CustomID: c.CustomID}
	}
	if cred := x.Credential(); cred != nil {
		r.AuthenticatedEntity = &logCredential{ID: cred.ID, ConsumerID: cred.ConsumerID}
	}
	return json.Marshal(&r)
}

// addValue files a header or argument value: a string, a list once seen
// twice (Kong's get_headers and get_query).
func addValue(m map[string]any, name string, value any) {
	switch old := m[name].(type) {
	case nil:
		m[name] = value
	case []any:
		m[name] = append(old, value)
	default:
		m[name] = []any{old, value}
	}
}

// queryMap is kong.request.get_query: decoded names and values, true
// for an argument without "=".
func queryMap(raw string) map[string]any {
	out := map[string]any{}
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, hasValue := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if !hasValue {
			addValue(out, name, true)
			continue
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			value = v
		}
		addValue(out, name, value)
	}
	return out
}
