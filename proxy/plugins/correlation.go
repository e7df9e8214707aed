package plugins

import (
	"crypto/rand"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// correlation-id (kong/plugins/correlation-id/handler.lua): a request
// without the header gets one upstream (a UUID, a per-process UUID with a
// counter, or a tracker string), echoed to the client when asked.

func init() { register("correlation-id", buildCorrelationID) }

type correlationConfig struct {
	HeaderName     string `json:"header_name"`
	Generator      string `json:"generator"`
	EchoDownstream bool   `json:"echo_downstream"`
}

// processUUID and counter are Kong's per-worker uuid#counter state.
var (
	processUUID        = uuid.NewString()
	correlationCounter atomic.Int64
)

func generateCorrelationID(generator string, x pdk.Exchange) string {
	switch generator {
	case "uuid":
		return uuid.NewString()
	case "tracker":
		var b [4]byte
		_, _ = rand.Read(b[:])
		return fmt.Sprintf("%s-%x-%.3f", x.ClientIP(), b, float64(time.Now().UnixMilli())/1000)
	}
	return processUUID + "#" + strconv.FormatInt(correlationCounter.Add(1), 10)
}

func buildCorrelationID(_ *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	var c correlationConfig
	if err := decodeConfig(p, &c); err != nil {
		return hooks, err
	}
	key := new(int)
	hooks[proxy.PhaseAccess] = func(x pdk.Exchange) {
		id, _ := x.Header(c.HeaderName)
		value := string(id)
		if value == "" {
			value = generateCorrelationID(c.Generator, x)
			x.SetUpstreamHeader(c.HeaderName, value)
		}
		if c.EchoDownstream {
			x.SetValue(key, value)
		}
	}
	if c.EchoDownstream {
		hooks[proxy.PhaseHeaderFilter] = func(x pdk.Exchange) {
			value, _ := x.Value(key).(string)
			if value == "" {
				v, _ := x.Header(c.HeaderName)
				value = string(v)
			}
			if value == "" {
				value = generateCorrelationID(c.Generator, x)
			}
			x.SetResponseHeader(c.HeaderName, value)
		}
	}
	return hooks, nil
}
