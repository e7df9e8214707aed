package plugins

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// jwt (kong/plugins/jwt/handler.lua and jwt_parser.lua): a token from the
// query, a cookie or a Bearer header; its key claim names a jwt_secrets
// credential whose algorithm the token's alg must equal, whose secret or
// public key must verify the signature, and exp/nbf are checked on demand.

func init() { register("jwt", buildJWT) }

type jwtConfig struct {
	URIParamNames     []string `json:"uri_param_names"`
	CookieNames       []string `json:"cookie_names"`
	KeyClaimName      string   `json:"key_claim_name"`
	SecretIsBase64    bool     `json:"secret_is_base64"`
	ClaimsToVerify    []string `json:"claims_to_verify"`
	Anonymous         *string  `json:"anonymous"`
	RunOnPreflight    bool     `json:"run_on_preflight"`
	MaximumExpiration float64  `json:"maximum_expiration"`
	HeaderNames       []string `json:"header_names"`
	Realm             *string  `json:"realm"`
}

// bearerRe is the handler's pattern for a token in a header; like
// ngx.re.gmatch it is not anchored.
var bearerRe = regexp.MustCompile(`\s*[Bb]earer\s+(.+)`)

// jwtNow is the clock exp and nbf are checked against (ngx.time: whole
// seconds); tests replace it.
var jwtNow = func() int64 { return time.Now().Unix() }

// jwtPlugin is one compiled jwt plugin.
type jwtPlugin struct {
	env       *Env
	c         jwtConfig
	challenge string // WWW-Authenticate when no token was found
	invalid   string // WWW-Authenticate for a bad token
}

func buildJWT(env *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	jp := &jwtPlugin{env: env}
	if err := decodeConfig(p, &jp.c); err != nil {
		return hooks, err
	}
	jp.challenge = "Bearer"
	if jp.c.Realm != nil {
		jp.challenge = `Bearer realm="` + *jp.c.Realm + `"`
	}
	jp.invalid = jp.challenge + ` error="invalid_token"`
	hooks[proxy.PhaseAccess] = func(x pdk.Exchange) {
		if !jp.c.RunOnPreflight && string(x.Method()) == "OPTIONS" {
			return
		}
		authenticate(x, env.Index, deref(jp.c.Anonymous), jp.authenticate)
	}
	return hooks, nil
}

// tokens are the distinct non-empty tokens the request carries
// (retrieve_tokens): query arguments, then cookies, then headers.
func (jp *jwtPlugin) tokens(x pdk.Exchange) []string {
	var set []string
	add := func(t string) {
		if t != "" && !containsString(set, t) {
			set = append(set, t)
		}
	}
	if len(jp.c.URIParamNames) > 0 && len(x.RawQuery()) > 0 {
		args, _ := url.ParseQuery(string(x.RawQuery()))
		for _, name := range jp.c.URIParamNames {
			for _, v := range args[name] {
				add(v)
			}
		}
	}
	for _, name := range jp.c.CookieNames {
		add(cookie(x, name))
	}
	for _, name := range jp.c.HeaderNames {
		v, n := x.Header(name)
		if n == 0 {
			continue
		}
		if m := bearerRe.FindSubmatch(v); m != nil {
			add(string(m[1]))
		}
	}
	return set
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// cookie is the first value of the cookie name in the request's Cookie
// headers, as nginx's $cookie_<name> finds it (name in any case).
func cookie(x pdk.Exchange, name string) string {
	var found string
	done := false
	x.VisitHeaders(func(k, v []byte) {
		if done || !strings.EqualFold(string(k), "Cookie") {
			return
		}
		for _, part := range bytes.Split(v, []byte{';'}) {
			k, val, ok := bytes.Cut(bytes.TrimSpace(part), []byte{'='})
			if ok && strings.EqualFold(string(k), name) {
				found, done = string(val), true
				return
			}
		}
	})
	return found
}

// authenticate is the handler's do_authentication.
func (jp *jwtPlugin) authenticate(x pdk.Exchange) (bool, authFailure) {
	fail := func(msg string) (bool, authFailure) {
		return false, authFailure{status: 401, message: msg, challenge: jp.invalid, json: true}
	}
	toks := jp.tokens(x)
	switch len(toks) {
	case 0:
		return false, authFailure{status: 401, message: msgUnauthorized, challenge: jp.challenge, json: true}
	case 1:
	default:
		return fail("Multiple tokens provided")
	}
	tok, err := parseJWT(toks[0])
	if err != nil {
		return fail("Bad token; " + err.Error())
	}
	name := jp.c.KeyClaimName
	// claims[name] or header[name]: a null or false claim is absent.
	keyValue := tok.claims[name]
	if keyValue == nil || keyValue == false {
		keyValue = tok.header[name]
	}
	if keyValue == nil || keyValue == false {
		return fail("No mandatory '" + name + "' in claims")
	}
	key, isString := keyValue.(string)
	if isString && key == "" {
		return fail("Invalid '" + name + "' in claims")
	}
	var cred *JWTCredential
	var consumer *pdk.Consumer
	if isString {
		cred, consumer = jp.env.Index.JWT(key)
	}
	if cred == nil {
		return fail("No credentials found for given '" + name + "'")
	}
	algorithm := cred.Algorithm
	if algorithm == "" {
		algorithm = "HS256"
	}
	if tok.alg != algorithm {
		return fail("Invalid algorithm")
	}
	valid, err := jp.verify(tok, cred)
	switch {
	case errors.Is(err, errNoSecret):
		return fail("Invalid key/secret")
	case err != nil:
		// Kong's verify asserts (an unusable key, an ECDSA signature of
		// the wrong length) raise: it answers 500.
		return false, authFailure{status: 500, message: msgUnexpected}
	case !valid:
		return fail("Invalid signature")
	}
	if errs := tok.verifyClaims(jp.c.ClaimsToVerify, jwtNow()); errs != nil {
		return false, authFailure{status: 401, challenge: jp.invalid, errors: errs, json: true}
	}
	if max := jp.c.MaximumExpiration; max > 0 {
		exp, isNumber := tok.claims["exp"].(float64)
		if !isNumber || exp-float64(jwtNow()) > max {
			return false, authFailure{status: 401, challenge: jp.invalid, json: true,
				errors: map[string]any{"exp": "exceeds maximum allowed expiration"}}
		}
	}
	if consumer == nil {
		return false, authFailure{status: 401, json: true,
			message: fmt.Sprintf("Could not find consumer for '%s=%s'", name, key)}
	}
	// X-Credential-Identifier is the credential's key.
	setConsumer(x, consumer, &cred.Credential, cred.Key)
	return true, authFailure{}
}

var errNoSecret = errors.New("no secret")

// verify checks the token's signature with the credential's secret (HS*)
// or public key; errNoSecret when it has none to check with.
func (jp *jwtPlugin) verify(tok *jwtToken, cred *JWTCredential) (bool, error) {
	if strings.HasPrefix(tok.alg, "HS") {
		secret := []byte(cred.Secret)
		if jp.c.SecretIsBase64 {
			dec, err := base64URLDecode(cred.Secret)
			if err != nil {
				return false, errNoSecret
			}
			secret = dec
		}
		return verifyHMAC(tok.alg, secret, tok.signed, tok.signature), nil
	}
	if cred.RSAPublicKey == "" {
		return false, errNoSecret
	}
	pub, err := cred.publicKey()
	if err != nil {
		return false, err
	}
	return verifyAsymmetric(tok.alg, pub, tok.signed, tok.signature)
}

func verifyHMAC(alg string, secret, signed, sig []byte) bool {
	var mac []byte
	switch alg {
	case "HS256":
		m := hmac.New(sha256.New, secret)
		m.Write(signed)
		mac = m.Sum(nil)
	case "HS384":
		m := hmac.New(sha512.New384, secret)
		m.Write(signed)
		mac = m.Sum(nil)
	default:
		m := hmac.New(sha512.New, secret)
		m.Write(signed)
		mac = m.Sum(nil)
	}
	return hmac.Equal(mac, sig)
}

// errKeyType is a public key that does not fit the algorithm.
var errKeyType = errors.New("public key does not fit the algorithm")

// verifyAsymmetric checks an RS*, PS*, ES* or EdDSA signature as
// jwt_parser.lua's alg_verify does; an error where Kong's asserts raise.
func verifyAsymmetric(alg string, pub crypto.PublicKey, signed, sig []byte) (bool, error) {
	hash := crypto.SHA256
	switch alg[2:] {
	case "384":
		hash = crypto.SHA384
	case "512":
		hash = crypto.SHA512
	}
	digest := func() []byte {
		h := hash.New()
		h.Write(signed)
		return h.Sum(nil)
	}
	switch alg[:2] {
	case "RS", "PS":
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return false, errKeyType
		}
		if alg[0] == 'R' {
			return rsa.VerifyPKCS1v15(k, hash, digest(), sig) == nil, nil
		}
		return rsa.VerifyPSS(k, hash, digest(), sig, nil) == nil, nil
	case "ES":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return false, errKeyType
		}
		// RFC 7518 3.4: R and S, each the size of the curve's order.
		size := map[string]int{"ES256": 64, "ES384": 96, "ES512": 132}[alg]
		if len(sig) != size {
			return false, fmt.Errorf("signature of %d bytes, want %d", len(sig), size)
		}
		r := new(big.Int).SetBytes(sig[:size/2])
		s := new(big.Int).SetBytes(sig[size/2:])
		return ecdsa.Verify(k, digest(), r, s), nil
	case "Ed":
		k, ok := pub.(ed25519.PublicKey)
		if !ok {
			return false, errKeyType
		}
		return ed25519.Verify(k, signed, sig), nil
	}
	return false, errKeyType
}

// parsePublicKey reads a PEM public key, or the public half of a private
// key, as openssl_pkey.new loads either.
func parsePublicKey(s string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKIXPublicKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PublicKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if signer, ok := k.(crypto.Signer); ok {
			return signer.Public(), nil
		}
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return &k.PublicKey, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return &k.PublicKey, nil
	}
	return nil, errors.New("not a public or private key")
}

// jwtAlgorithms are the algs jwt_parser.lua can verify; any other alg,
// "none" among them, is a bad token.
var jwtAlgorithms = map[string]bool{
	"HS256": true, "HS384": true, "HS512": true,
	"RS256": true, "RS384": true, "RS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"EdDSA": true,
}

// jwtToken is a decoded token (jwt_parser.lua's decode_token).
type jwtToken struct {
	header    map[string]any
	claims    map[string]any
	alg       string
	signed    []byte // header_64 "." claims_64
	signature []byte
}

// parseJWT decodes a token; its errors are jwt_parser.lua's, which the
// handler answers as "Bad token; <error>".
func parseJWT(token string) (*jwtToken, error) {
	h64, rest, ok1 := strings.Cut(token, ".")
	c64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return nil, errors.New("invalid JSON")
	}
	tok := &jwtToken{signed: []byte(token[:len(h64)+1+len(c64)])}
	hraw, err1 := base64URLDecode(h64)
	craw, err2 := base64URLDecode(c64)
	if err1 != nil || err2 != nil {
		return nil, errors.New("invalid JSON")
	}
	var header, claims any
	if json.Unmarshal(hraw, &header) != nil || json.Unmarshal(craw, &claims) != nil {
		return nil, errors.New("invalid JSON")
	}
	sig, err := base64URLDecode(s64)
	if err != nil {
		return nil, errors.New("invalid JSON")
	}
	tok.header, _ = header.(map[string]any)
	tok.alg, _ = tok.header["alg"].(string)
	if !jwtAlgorithms[tok.alg] {
		return nil, errors.New("invalid alg")
	}
	if tok.claims, ok1 = claims.(map[string]any); !ok1 {
		return nil, errors.New("invalid claims")
	}
	tok.signature = sig
	return tok, nil
}

// base64URLDecode decodes URL-safe base64 with or without its padding,
// as jwt_parser.lua's base64_decode does.
func base64URLDecode(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// verifyClaims checks exp and nbf as verify_registered_claims does:
// each must be a number, exp in the future, nbf in the past; nil when
// all pass, else Kong's error object by claim.
func (tok *jwtToken) verifyClaims(names []string, now int64) map[string]any {
	var errs map[string]any
	for _, name := range names {
		v, isNumber := tok.claims[name].(float64)
		msg := ""
		switch {
		case !isNumber || math.IsNaN(v):
			msg = "must be a number"
		case name == "exp" && v <= float64(now):
			msg = "token expired"
		case name == "nbf" && v > float64(now):
			msg = "token not valid yet"
		}
		if msg != "" {
			if errs == nil {
				errs = map[string]any{}
			}
			errs[name] = msg
		}
	}
	return errs
}
