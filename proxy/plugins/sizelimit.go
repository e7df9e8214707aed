package plugins

import (
	"strconv"
	"strings"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// request-size-limiting (kong/plugins/request-size-limiting/handler.lua):
// a declared Content-Length, or else the body read, over the allowed size
// gets 413 (417 when the client expects 100-continue).

func init() { register("request-size-limiting", buildSizeLimit) }

type sizeLimitConfig struct {
	AllowedPayloadSize   int64  `json:"allowed_payload_size"`
	SizeUnit             string `json:"size_unit"`
	RequireContentLength bool   `json:"require_content_length"`
}

var sizeUnits = map[string]int64{"bytes": 1, "kilobytes": 1 << 10, "megabytes": 1 << 20}

func buildSizeLimit(_ *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	var c sizeLimitConfig
	if err := decodeConfig(p, &c); err != nil {
		return hooks, err
	}
	allowed := c.AllowedPayloadSize * sizeUnits[c.SizeUnit]
	check := func(x pdk.Exchange, length int64) {
		if length <= allowed {
			return
		}
		if expect, _ := x.Header("Expect"); strings.EqualFold(strings.TrimSpace(string(expect)), "100-continue") {
			x.Error(417, "Request size limit exceeded")
			return
		}
		x.Error(413, "Request size limit exceeded")
	}
	hooks[proxy.PhaseAccess] = func(x pdk.Exchange) {
		if cl, n := x.Header("Content-Length"); n > 0 {
			if v, err := strconv.ParseInt(string(cl), 10, 64); err == nil {
				check(x, v)
				return
			}
		}
		if te, _ := x.Header("Transfer-Encoding"); c.RequireContentLength && string(te) != "chunked" {
			x.Error(411, "A valid Content-Length header is required")
			return
		}
		body, err := x.Body()
		if err != nil {
			// The proxy's own limit answered first; it answers again.
			return
		}
		check(x, int64(len(body)))
	}
	return hooks, nil
}
