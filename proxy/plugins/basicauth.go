package plugins

import (
	"crypto/subtle"
	"encoding/base64"
	"regexp"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// basic-auth (kong/plugins/basic-auth/access.lua): a username and password
// in Proxy-Authorization or Authorization, checked against the stored
// hash (entity.HashBasicAuthPassword, Kong's crypto.lua).

func init() { register("basic-auth", buildBasicAuth) }

type basicAuthConfig struct {
	Anonymous       *string `json:"anonymous"`
	HideCredentials bool    `json:"hide_credentials"`
	Realm           string  `json:"realm"`
}

// basicRe and basicPartsRe are the handler's patterns.
var (
	basicRe      = regexp.MustCompile(`^\s*[Bb]asic\s*(.+)`)
	basicPartsRe = regexp.MustCompile(`^([^:]+):(.*)`)
)

func buildBasicAuth(env *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	var c basicAuthConfig
	if err := decodeConfig(p, &c); err != nil {
		return hooks, err
	}
	fail := authFailure{status: 401, message: msgUnauthorized, challenge: `Basic realm="` + c.Realm + `"`}
	do := func(x pdk.Exchange) (bool, authFailure) {
		if _, n := x.Header("Authorization"); n == 0 {
			if _, n := x.Header("Proxy-Authorization"); n == 0 {
				return false, fail
			}
		}
		var cred *BasicCredential
		var consumer *pdk.Consumer
		user, pass, ok := basicCredentials(x, "Proxy-Authorization", c.HideCredentials)
		if ok {
			cred, consumer = env.Index.Basic(user)
		}
		if cred == nil {
			if user, pass, ok = basicCredentials(x, "Authorization", c.HideCredentials); !ok {
				return false, fail
			}
			cred, consumer = env.Index.Basic(user)
		}
		if cred == nil || !passwordMatches(cred, pass) {
			return false, fail
		}
		setConsumer(x, consumer, &cred.Credential, user)
		return true, authFailure{}
	}
	hooks[proxy.PhaseAccess] = func(x pdk.Exchange) { authenticate(x, env.Index, deref(c.Anonymous), do) }
	return hooks, nil
}

// basicCredentials is the handler's retrieve_credentials.
func basicCredentials(x pdk.Exchange, header string, hide bool) (user, pass string, ok bool) {
	v, n := x.Header(header)
	if n > 0 {
		if m := basicRe.FindSubmatch(v); m != nil {
			if decoded, err := base64.StdEncoding.DecodeString(string(m[1])); err == nil {
				if parts := basicPartsRe.FindStringSubmatch(string(decoded)); parts != nil {
					user, pass, ok = parts[1], parts[2], true
				}
			}
		}
	}
	if hide {
		x.ClearUpstreamHeader(header)
	}
	return user, pass, ok
}

func passwordMatches(cred *BasicCredential, pass string) bool {
	digest := entity.HashBasicAuthPassword(pass, cred.ConsumerID)
	return subtle.ConstantTimeCompare([]byte(digest), []byte(cred.PasswordHash)) == 1
}
