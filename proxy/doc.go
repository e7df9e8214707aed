// Package proxy owns Grapevine's data plane: the router (Kong 3.9
// traditional_compatible matching and priorities), the immutable Snapshot the
// router serves from, the upstream HTTP client pool, the headers Kong adds on
// the way up and down, and Kong's error responses.
//
// It consumes entity.Service and entity.Route values handed to it by the node
// package and must never import the store or admin packages, touch the
// database, or block a request on anything but the upstream it proxies to.
// A new configuration goes live by building a Snapshot and calling
// Server.Swap; the request path only ever reads an atomic pointer.
package proxy
