package plugins

import (
	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// key-auth (kong/plugins/key-auth/handler.lua): a key in a header, the
// query or the body, looked up in the credential index.

func init() { register("key-auth", buildKeyAuth) }

type keyAuthConfig struct {
	KeyNames        []string `json:"key_names"`
	HideCredentials bool     `json:"hide_credentials"`
	Anonymous       *string  `json:"anonymous"`
	KeyInHeader     bool     `json:"key_in_header"`
	KeyInQuery      bool     `json:"key_in_query"`
	KeyInBody       bool     `json:"key_in_body"`
	RunOnPreflight  bool     `json:"run_on_preflight"`
	Realm           *string  `json:"realm"`
}

const (
	msgDuplicateKey = "Duplicate API key found"
	msgNoKey        = "No API key found in request"
	msgUnauthorized = "Unauthorized"
)

func buildKeyAuth(env *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	var c keyAuthConfig
	if err := decodeConfig(p, &c); err != nil {
		return hooks, err
	}
	challenge := "Key"
	if c.Realm != nil {
		challenge = `Key realm="` + *c.Realm + `"`
	}
	do := func(x pdk.Exchange) (bool, authFailure) { return keyAuthenticate(env.Index, &c, challenge, x) }
	hooks[proxy.PhaseAccess] = func(x pdk.Exchange) {
		if !c.RunOnPreflight && string(x.Method()) == "OPTIONS" {
			return
		}
		authenticate(x, env.Index, deref(c.Anonymous), do)
	}
	return hooks, nil
}

// keyAuthenticate is the handler's do_authentication.
func keyAuthenticate(ix *Index, c *keyAuthConfig, challenge string, x pdk.Exchange) (bool, authFailure) {
	unauthorized := func(msg string) (bool, authFailure) {
		return false, authFailure{status: 401, message: msg, challenge: challenge}
	}
	var key []byte
	var body requestBody
	bodyRead, bodyOK := false, false
	readBody := func() {
		if !bodyRead {
			bodyRead = true
			body, bodyOK = parseBody(x)
		}
	}
	for _, name := range c.KeyNames {
		var v []byte
		n := 0
		if c.KeyInHeader {
			v, n = x.Header(name)
		}
		if n == 0 && c.KeyInQuery {
			v, n = x.QueryArg(name)
		}
		if n == 0 && c.KeyInBody {
			readBody()
			var s string
			if s, n = body.str(name); n > 0 {
				v = []byte(s)
			}
		}
		if n > 1 {
			return unauthorized(msgDuplicateKey)
		}
		if n == 0 {
			continue
		}
		key = v
		if c.HideCredentials {
			x.SetUpstreamQuery(queryWithout(x.RawQuery(), name))
			x.ClearUpstreamHeader(name)
			if c.KeyInBody {
				readBody()
				if bodyOK {
					nb, ct := body.without(name)
					x.SetUpstreamBody(nb, ct)
				}
			}
		}
		break
	}
	if len(key) == 0 {
		return unauthorized(msgNoKey)
	}
	cred, consumer := ix.Key(key)
	if cred == nil {
		return unauthorized(msgUnauthorized)
	}
	setConsumer(x, consumer, &cred.Credential, cred.ID)
	return true, authFailure{}
}
