package proxy

import (
	"crypto/tls"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy/balancer"
	"github.com/grapevine-gw/grapevine/proxy/tlsconf"
)

// Snapshot is an immutable routing table: the route index and the
// services routes point to. It is built by NewSnapshot or a Builder and then
// only read, by any number of requests at once.
type Snapshot struct {
	index    *routeIndex
	services []*service // indexed by service.idx
	routes   int
	// balancers are the upstreams' balancers by slot (service.upstream-1).
	balancers []*balancer.Balancer
	// For the state kept across swaps (Keyed): the ids of the entities
	// removed since the Builder's previous snapshot, or, for a Builder's
	// first snapshot (a full build), the set of every id it has.
	removed []string
	ids     map[string]bool
	// certs are the certificates served by server name (SNI entities).
	certs *tlsconf.Table
	// sniRoutes counts the routes with snis: without any, a request's
	// server name is not looked up.
	sniRoutes int
}

// SnapshotInput is every entity a snapshot is built from, one field per
// kind. The issues that add plugins, upstreams, targets and certificates add
// their kind here (and to SnapshotIDs), so the node hands the proxy one value
// and the order of arguments never grows.
type SnapshotInput struct {
	Services []entity.Service
	Routes   []entity.Route
	// Plugins are compiled by their owner; see PluginInstance.
	Plugins []PluginInstance
	// Upstreams and Targets become balancers (builder_upstreams.go).
	Upstreams []entity.Upstream
	Targets   []entity.Target
	// Certificates, SNIs and CACertificates: what the ssl listeners serve
	// by server name, and what services trust and present upstream.
	Certificates   []entity.Certificate
	SNIs           []entity.SNI
	CACertificates []entity.CACertificate
}

// service is the part of an entity.Service the request path needs, with
// everything derivable computed once.
type service struct {
	idx        int
	id         string
	name       string
	protocol   string
	proxyable  bool   // http or https: something this proxy can forward to
	grpc       bool   // grpc or grpcs: forwarded over HTTP/2 (grpc.go)
	addr       string // host:port to dial
	host       string
	hostHeader []byte // Host sent upstream unless preserve_host
	base       []byte // service.path, or "/"
	retries    int
	connect    time.Duration
	read       time.Duration
	write      time.Duration
	upstream   int         // slot+1 of the upstream whose name is host; 0: none
	tls        *tls.Config // upstream TLS of an https service; nil otherwise
	// e is the entity the service was compiled from, kept to compile it
	// again when a certificate it names changes.
	e entity.Service
}

// route is the part of an entity.Route the request path needs.
type route struct {
	id           string
	name         string
	svc          *service // nil: answer 503
	stripPath    bool
	preserveHost bool
	// streamAnswer: response_buffering off, the answer's body is passed
	// on as it arrives.
	streamAnswer bool
	// streamRequest: request_buffering off, the request's body goes
	// upstream as it arrives (reqbody.go).
	streamRequest bool
	allowsHTTP    bool // protocols include http (or grpc, answered separately)
	grpcOnly      bool
	grpcPlain     bool       // protocols include grpc: gRPC without TLS is served
	redirectCode  int        // https_redirect_status_code
	plan          *phasePlan // the plugins' hooks; nil: none (phases.go)
	// e is the entity the route was compiled from (the Builder's copy),
	// what plugins see of it (kong.router.get_route).
	e *entity.Route
}

// EmptySnapshot returns a snapshot with no routes: every request gets 404.
func EmptySnapshot() *Snapshot {
	return &Snapshot{}
}

// NewSnapshot builds the routing table from a whole configuration. Routes
// whose service is unknown are kept and answer 503; routes of a disabled
// service are left out, as Kong does. A route that cannot be compiled (an
// invalid regex) is skipped and reported in the returned warnings.
func NewSnapshot(in SnapshotInput) (*Snapshot, []error) {
	b := NewBuilder()
	warnings := b.Apply(SnapshotChange{Put: in})
	return b.Snapshot(), warnings
}

// Routes reports how many routes the snapshot serves.
func (s *Snapshot) Routes() int { return s.routes }

func newService(idx int, e *entity.Service, tlsConf *tls.Config) *service {
	svc := &service{
		idx:       idx,
		id:        e.ID,
		protocol:  e.Protocol,
		proxyable: e.Protocol == "http" || e.Protocol == "https",
		grpc:      e.Protocol == "grpc" || e.Protocol == "grpcs",
		host:      e.Host,
		retries:   max(e.Retries, 0),
		connect:   msOr(e.ConnectTimeout),
		read:      msOr(e.ReadTimeout),
		write:     msOr(e.WriteTimeout),
		tls:       tlsConf,
		e:         *e,
		base:      []byte("/"),
	}
	if e.Name != nil {
		svc.name = *e.Name
	}
	port := e.Port
	if port == 0 {
		port = entity.DefaultPort(e.Protocol)
	}
	svc.addr = net.JoinHostPort(e.Host, strconv.Itoa(port))
	svc.hostHeader = []byte(hostHeader(e.Host, port, e.Protocol))
	if e.Path != nil && *e.Path != "" {
		svc.base = []byte(*e.Path)
	}
	return svc
}

// hostHeader is Kong's set_host_header: the hostname, plus ":port" unless
// the port is the scheme's default.
func hostHeader(host string, port int, protocol string) string {
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	if port == entity.DefaultPort(protocol) {
		return host
	}
	return host + ":" + strconv.Itoa(port)
}

// msOr turns a Kong millisecond timeout into a duration, 60 s if unset.
func msOr(ms int) time.Duration {
	if ms <= 0 {
		return 60 * time.Second
	}
	return time.Duration(ms) * time.Millisecond
}

func newRoute(e *entity.Route, services map[string]*service) *route {
	r := &route{
		id:            e.ID,
		stripPath:     e.StripPath,
		preserveHost:  e.PreserveHost,
		streamAnswer:  !e.ResponseBuffering,
		streamRequest: !e.RequestBuffering,
		redirectCode:  e.HTTPSRedirectStatusCode,
		e:             e,
	}
	if e.Name != nil {
		r.name = *e.Name
	}
	if e.Service != nil {
		r.svc = services[e.Service.ID]
	}
	protocols := e.Protocols
	if len(protocols) == 0 {
		protocols = []string{"http", "https"}
	}
	r.allowsHTTP = slices.Contains(protocols, "http")
	r.grpcOnly = !r.allowsHTTP && !slices.Contains(protocols, "https")
	r.grpcPlain = slices.Contains(protocols, "grpc")
	return r
}

// isHTTPRoute reports whether a route belongs to the HTTP subsystem (stream
// routes are served by a different listener).
func isHTTPRoute(r *entity.Route) bool {
	if len(r.Protocols) == 0 {
		return true
	}
	for _, p := range r.Protocols {
		switch p {
		case "http", "https", "grpc", "grpcs":
			return true
		}
	}
	return false
}
