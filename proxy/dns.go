package proxy

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// resolverFor returns the resolver upstream hosts are looked up with:
// the system's (/etc/resolv.conf, /etc/hosts) when servers is empty, else
// one asking those name servers in turn (kong.conf's dns_resolver).
func resolverFor(servers []string) *net.Resolver {
	if len(servers) == 0 {
		return net.DefaultResolver
	}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			var errs []error
			for _, server := range servers {
				conn, err := d.DialContext(ctx, network, server)
				if err == nil {
					return conn, nil
				}
				errs = append(errs, err)
			}
			return nil, errors.Join(errs...)
		},
	}
}

// dnsFailure is why a service's host could not be resolved, answered as
// Kong's balancer does (kong/runloop/balancer/init.lua, handler.lua's
// balancer_execute): a name that does not exist is 503 "name resolution
// failed", any other failure of the lookup 500.
func dnsFailure(err error, host string) (status int, msg string, ok bool) {
	var de *net.DNSError
	if !errors.As(err, &de) {
		return 0, "", false
	}
	if de.IsNotFound {
		return 503, "name resolution failed", true
	}
	return 500, "failed the initial dns/balancer resolve for '" + host + "' with: " + de.Error(), true
}

// serviceSRV is Kong's toip for a service's host that is an SRV name
// (kong/resty/dns/client.lua): when dns_order asks SRV records before A
// records, a new connection goes to a record of the lowest priority,
// picked at random by weight, at the record's port (the service's port is
// ignored). A name without SRV records is dialled as it is; with LAST
// first in dns_order it is not asked for SRV records again, as Kong's
// resolver remembers the type that answered.
type serviceSRV struct {
	resolver *net.Resolver
	host     string
	last     bool        // dns_order starts with LAST
	plain    atomic.Bool // the name had no SRV records and last is set
}

// newServiceSRV is nil when addr's host is an IP or dns_order asks no SRV
// records before A ones.
func newServiceSRV(resolver *net.Resolver, addr string, order []uint16) *serviceSRV {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || net.ParseIP(host) != nil || host == "" {
		return nil
	}
	if len(order) == 0 {
		order = defaultDNSOrder
	}
	srv, a := slices.Index(order, dns.TypeSRV), slices.Index(order, dns.TypeA)
	if srv < 0 || a >= 0 && a < srv {
		return nil
	}
	return &serviceSRV{resolver: resolver, host: host, last: order[0] == typeLast}
}

// pick is the address of an SRV record to dial, ok false when the name
// has none (or the lookup failed: the dial then reports the name's own
// failure).
func (s *serviceSRV) pick(timeout time.Duration) (addr string, ok bool) {
	if s.plain.Load() {
		return "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Go asks for the name itself when service and proto are empty, and
	// orders the records by priority, then at random by weight.
	_, records, err := s.resolver.LookupSRV(ctx, "", "", s.host)
	if err != nil || len(records) == 0 {
		var de *net.DNSError
		if s.last && (err == nil || errors.As(err, &de) && de.IsNotFound) {
			s.plain.Store(true)
		}
		return "", false
	}
	r := records[0]
	return net.JoinHostPort(strings.TrimSuffix(r.Target, "."), strconv.Itoa(int(r.Port))), true
}
