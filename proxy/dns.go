package proxy

import (
	"context"
	"errors"
	"net"
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
