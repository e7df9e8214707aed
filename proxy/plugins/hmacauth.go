package plugins

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// hmac-auth (kong/plugins/hmac-auth/access.lua): an HTTP signature in
// Proxy-Authorization or Authorization over the named request headers
// (plus the pseudo headers request-line and @request-target), with a
// Date or X-Date within clock_skew and, optionally, the body's Digest.

func init() { register("hmac-auth", buildHMACAuth) }

type hmacAuthConfig struct {
	HideCredentials     bool     `json:"hide_credentials"`
	ClockSkew           float64  `json:"clock_skew"`
	Anonymous           *string  `json:"anonymous"`
	ValidateRequestBody bool     `json:"validate_request_body"`
	EnforceHeaders      []string `json:"enforce_headers"`
	Algorithms          []string `json:"algorithms"`
	Realm               *string  `json:"realm"`
}

const (
	msgHMACNotValid = "HMAC signature cannot be verified"
	msgHMACNotSame  = "HMAC signature does not match"
	msgHMACNoDate   = "HMAC signature cannot be verified, a valid date or x-date header is required for HMAC Authentication"
)

// hmacRe is access.lua's pattern for the signature parameters; like
// ngx.re.gmatch it is not anchored, and its groups are greedy.
var hmacRe = regexp.MustCompile(`\s*[Hh]mac\s*username="(.+)",\s*algorithm="(.+)",\s*headers="(.+)",\s*signature="(.+)"`)

var hmacHashes = map[string]func() hash.Hash{
	"hmac-sha1": sha1.New, "hmac-sha256": sha256.New, "hmac-sha384": sha512.New384, "hmac-sha512": sha512.New,
}

// hmacNow is the clock Date is checked against; tests replace it.
var hmacNow = time.Now

type hmacParams struct {
	username, algorithm, signature string
	headers                        []string
}

func buildHMACAuth(env *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	var c hmacAuthConfig
	if err := decodeConfig(p, &c); err != nil {
		return hooks, err
	}
	challenge := "hmac"
	if c.Realm != nil {
		challenge = `hmac realm="` + *c.Realm + `"`
	}
	do := func(x pdk.Exchange) (bool, authFailure) { return hmacAuthenticate(env.Index, &c, challenge, x) }
	hooks[proxy.PhaseAccess] = func(x pdk.Exchange) {
		authenticate(x, env.Index, deref(c.Anonymous), do)
	}
	return hooks, nil
}

// requestHeader is a request header as kong.request.get_header reads it
// (nginx's $http_<name>): several of one name joined with ", "; ok false
// when there is none.
func requestHeader(x pdk.Exchange, name string) (value string, ok bool) {
	first, n := x.Header(name)
	if n <= 1 {
		return string(first), n == 1
	}
	var values []string
	x.VisitHeaders(func(k, v []byte) {
		if strings.EqualFold(string(k), name) {
			values = append(values, string(v))
		}
	})
	return strings.Join(values, ", "), true
}

// hmacFields parses a header's signature parameters; username "" when
// it has none (retrieve_hmac_fields).
func hmacFields(header string) hmacParams {
	m := hmacRe.FindStringSubmatch(header)
	if m == nil {
		return hmacParams{}
	}
	return hmacParams{username: m[1], algorithm: m[2], headers: strings.Split(m[3], " "), signature: m[4]}
}

// hmacAuthenticate is access.lua's do_authentication.
func hmacAuthenticate(ix *Index, c *hmacAuthConfig, challenge string, x pdk.Exchange) (bool, authFailure) {
	fail := func(msg string) (bool, authFailure) {
		return false, authFailure{status: 401, message: msg, challenge: challenge}
	}
	authorization, hasAuth := requestHeader(x, "Authorization")
	proxyAuth, hasProxyAuth := requestHeader(x, "Proxy-Authorization")
	if !hasAuth && !hasProxyAuth {
		return fail(msgUnauthorized)
	}
	if !clockSkewOK(x, "X-Date", c.ClockSkew) && !clockSkewOK(x, "Date", c.ClockSkew) {
		return fail(msgHMACNoDate)
	}
	params := hmacFields(proxyAuth)
	switch {
	case params.username == "":
		params = hmacFields(authorization)
		if c.HideCredentials {
			x.ClearUpstreamHeader("Authorization")
		}
	case c.HideCredentials:
		x.ClearUpstreamHeader("Proxy-Authorization")
	}
	if !hmacParamsValid(&params, c) {
		return fail(msgHMACNotValid)
	}
	cred, consumer := ix.HMAC(params.username)
	if cred == nil {
		return fail(msgHMACNotValid)
	}
	if !hmacSignatureValid(x, &params, cred.Secret) {
		return fail(msgHMACNotSame)
	}
	if c.ValidateRequestBody && !digestValid(x) {
		return fail(msgHMACNotSame)
	}
	// X-Credential-Identifier is the credential's username.
	setConsumer(x, consumer, &cred.Credential, params.username)
	return true, authFailure{}
}

// clockSkewOK: the header holds an HTTP date within skew seconds of now.
func clockSkewOK(x pdk.Exchange, name string, skew float64) bool {
	v, ok := requestHeader(x, name)
	if !ok {
		return false
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return false
	}
	d := hmacNow().Unix() - t.Unix()
	if d < 0 {
		d = -d
	}
	return float64(d) <= skew
}

// hmacParamsValid is validate_params: a username and signature, every
// enforced header signed, an allowed algorithm.
func hmacParamsValid(p *hmacParams, c *hmacAuthConfig) bool {
	if p.username == "" || p.signature == "" {
		return false
	}
	for _, h := range c.EnforceHeaders {
		if !slices.Contains(p.headers, h) {
			return false
		}
	}
	return slices.Contains(c.Algorithms, p.algorithm)
}

// hmacSignatureValid rebuilds the signing string (create_hash): for each
// signed header "name: value", request-line as "METHOD uri HTTP/v",
// @request-target as "@request-target: method uri", an absent header as
// "name:", joined by newlines, over the URI as the client sent it.
func hmacSignatureValid(x pdk.Exchange, p *hmacParams, secret string) bool {
	newHash := hmacHashes[p.algorithm]
	if newHash == nil {
		return false
	}
	uri := string(x.RequestURI())
	var b strings.Builder
	for i, name := range p.headers {
		if i > 0 {
			b.WriteByte('\n')
		}
		v, ok := "", false
		if name != "" {
			v, ok = requestHeader(x, name)
		}
		switch {
		case ok:
			b.WriteString(name + ": " + v)
		case name == "@request-target":
			b.WriteString(name + ": " + strings.ToLower(string(x.Method())) + " " + uri)
		case name == "request-line":
			b.WriteString(string(x.Method()) + " " + uri + " HTTP/" + x.HTTPVersion())
		default:
			b.WriteString(name + ":")
		}
	}
	m := hmac.New(newHash, []byte(secret))
	m.Write([]byte(b.String()))
	// ngx.decode_base64 takes the signature with or without padding.
	sig, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(p.signature, "="))
	return err == nil && hmac.Equal(m.Sum(nil), sig)
}

// digestValid is validate_body: the Digest header is "SHA-256=" and the
// base64 SHA-256 of the body; without one, only an empty body passes.
func digestValid(x pdk.Exchange) bool {
	body, err := x.Body()
	if err != nil {
		return false
	}
	digest, ok := requestHeader(x, "Digest")
	if !ok {
		return len(body) == 0
	}
	sum := sha256.Sum256(body)
	return digest == "SHA-256="+base64.StdEncoding.EncodeToString(sum[:])
}
