package gossip

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

func splitHostPort(addr string) (string, int, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("invalid address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("invalid port in %q", addr)
	}
	return host, port, nil
}

// advertiseAddr picks the address other members reach this node at: the
// configured one, else a specific bind address, else the host's first
// non-loopback address. A wildcard bind never advertises 127.0.0.1 (other
// hosts could not reach it).
func advertiseAddr(configured, bindHost string, bindPort int) (string, int, error) {
	if configured != "" {
		host, port, err := splitHostPort(configured)
		if err != nil {
			return "", 0, fmt.Errorf("cluster_advertise: %w", err)
		}
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			return "", 0, fmt.Errorf("cluster_advertise %q must be a specific IP address", configured)
		}
		return host, port, nil
	}
	if ip := net.ParseIP(bindHost); ip != nil && !ip.IsUnspecified() {
		return bindHost, bindPort, nil
	}
	ip, err := firstNonLoopbackIP()
	if err != nil {
		return "", 0, fmt.Errorf("cluster_listen %s is a wildcard and %w; set cluster_advertise", net.JoinHostPort(bindHost, strconv.Itoa(bindPort)), err)
	}
	return ip.String(), bindPort, nil
}

// firstNonLoopbackIP returns the first up, non-loopback unicast address,
// IPv4 first. Addresses in 100.64.0.0/10 (Kubernetes pod ranges) count.
func firstNonLoopbackIP() (net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing interface addresses: %w", err)
	}
	var v6 net.IP
	for _, a := range addrs {
		ipNet, ok := a.(*net.IPNet)
		if !ok || ipNet.IP.IsLoopback() || ipNet.IP.IsLinkLocalUnicast() || ipNet.IP.IsMulticast() {
			continue
		}
		if ipNet.IP.To4() != nil {
			return ipNet.IP, nil
		}
		if v6 == nil {
			v6 = ipNet.IP
		}
	}
	if v6 != nil {
		return v6, nil
	}
	return nil, errors.New("the host has no non-loopback address")
}

// ResolveAdvertise returns the host:port this node will advertise for the
// given cluster_listen and cluster_advertise values (see Config.AdvertiseAddr).
func ResolveAdvertise(bind, configured string) (string, error) {
	bindHost, bindPort, err := splitHostPort(bind)
	if err != nil {
		return "", fmt.Errorf("cluster_listen: %w", err)
	}
	host, port, err := advertiseAddr(configured, bindHost, bindPort)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}
