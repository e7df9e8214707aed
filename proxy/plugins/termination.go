package plugins

import (
	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// request-termination (kong/plugins/request-termination/handler.lua):
// answers every request (or those carrying the trigger header or query
// argument) with a fixed status and message or body. echo is not
// supported yet: such an instance fails to compile.

func init() { register("request-termination", buildTermination) }

type terminationConfig struct {
	StatusCode  int     `json:"status_code"`
	Message     *string `json:"message"`
	ContentType *string `json:"content_type"`
	Body        *string `json:"body"`
	Echo        bool    `json:"echo"`
	Trigger     *string `json:"trigger"`
}

// terminationMessages are the handler's DEFAULT_RESPONSE.
var terminationMessages = map[int]string{
	401: "Unauthorized",
	404: "Not found",
	405: "Method not allowed",
	500: "An unexpected error occurred",
	502: "Bad Gateway",
	503: "Service unavailable",
}

func buildTermination(_ *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	var c terminationConfig
	if err := decodeConfig(p, &c); err != nil {
		return hooks, err
	}
	if c.Echo {
		return hooks, errString("request-termination's echo is not supported")
	}
	var body []byte
	if c.Body != nil {
		body = []byte(*c.Body)
	}
	hooks[proxy.PhaseAccess] = func(x pdk.Exchange) {
		if c.Trigger != nil {
			if _, n := x.Header(*c.Trigger); n == 0 {
				if _, n := x.QueryArg(*c.Trigger); n == 0 {
					return
				}
			}
		}
		switch {
		case c.Body != nil:
			ct := ""
			if c.ContentType != nil {
				ct = *c.ContentType
			}
			x.Exit(c.StatusCode, body, ct)
		case c.Message != nil:
			exitMessage(x, c.StatusCode, *c.Message)
		default:
			if msg, ok := terminationMessages[c.StatusCode]; ok {
				exitMessage(x, c.StatusCode, msg)
			} else {
				x.Exit(c.StatusCode, nil, "")
			}
		}
	}
	return hooks, nil
}

type errString string

func (e errString) Error() string { return string(e) }
