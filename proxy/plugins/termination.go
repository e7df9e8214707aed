package plugins

import (
	"encoding/json"
	"os"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// request-termination (kong/plugins/request-termination/handler.lua):
// answers every request (or those carrying the trigger header or query
// argument) with a fixed status and message or body, or with the request
// echoed as JSON (echo).

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

func buildTermination(env *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	var c terminationConfig
	if err := decodeConfig(p, &c); err != nil {
		return hooks, err
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
		case c.Echo:
			echo(env, x, &c)
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

// echo answers with the request as the handler's echo table has it:
// the message, the node, the request as the PDK reads it, and the route
// and service matched.
func echo(env *Env, x pdk.Exchange, c *terminationConfig) {
	content := map[string]any{
		"kong": map[string]any{"node_id": env.NodeID, "worker_pid": os.Getpid(), "hostname": env.Hostname},
		"request": map[string]any{
			"scheme":       x.Scheme(),
			"host":         string(x.Host()),
			"port":         x.Port(),
			"headers":      requestHeaders(x),
			"query":        requestQuery(x),
			"method":       string(x.Method()),
			"path":         string(x.Path()),
			"uri_captures": uriCaptures(x),
		},
	}
	if msg := terminationMessage(c); msg != "" {
		content["message"] = msg
	}
	if raw, err := x.Body(); err == nil {
		content["request"].(map[string]any)["raw_body"] = string(raw)
	}
	if body := requestBodyValue(x); body != nil {
		content["request"].(map[string]any)["body"] = body
	}
	if r := entityTable(x.Route()); r != nil {
		content["matched_route"] = r
	}
	if s := entityTable(x.Service()); s != nil {
		content["matched_service"] = s
	}
	out, err := json.Marshal(content)
	if err != nil {
		exitMessage(x, 500, terminationMessages[500])
		return
	}
	x.Exit(c.StatusCode, out, "application/json; charset=utf-8")
}

// terminationMessage is conf.message or the status's default message.
func terminationMessage(c *terminationConfig) string {
	if c.Message != nil {
		return *c.Message
	}
	return terminationMessages[c.StatusCode]
}

type errString string

func (e errString) Error() string { return string(e) }
