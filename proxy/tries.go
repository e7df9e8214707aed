package proxy

import (
	"time"

	"github.com/grapevine-gw/grapevine/proxy/balancer"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
	"github.com/valyala/fasthttp"
)

// The balancer's attempts are kept for the log phase (Kong's
// balancer_data.tries, serialized by kong.log.serialize) only when the
// route has plugins: without them nothing reads them, and a plain
// request keeps its path free of the bookkeeping.

// addTry records an attempt at addr whose picking began at start.
func (x *exchange) addTry(start time.Time, addr *balancer.Address) {
	x.tries = append(x.tries, pdk.Try{Start: start, Latency: time.Since(start), IP: addr.IP, Port: addr.Port})
}

// failTry marks the last attempt failed as nginx's get_last_failure
// does: 504 for a timeout, 502 for any other failure.
func (x *exchange) failTry(err error) {
	if len(x.tries) == 0 {
		return
	}
	code := fasthttp.StatusBadGateway
	if isTimeout(err) {
		code = fasthttp.StatusGatewayTimeout
	}
	x.tries[len(x.tries)-1].State, x.tries[len(x.tries)-1].Code = "failed", code
}

// endTries is Kong's header_filter bookkeeping: once the retries ran out
// (more attempts than retries) an answer of 500 or more marks the last
// attempt failed with that status.
func (x *exchange) endTries(status, retries int) {
	if n := len(x.tries); n > retries && status > 499 {
		x.tries[n-1].State, x.tries[n-1].Code = "failed", status
	}
}
