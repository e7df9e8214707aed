package entity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"
)

// b64 is one base64url member of a public key's JWK.
func b64(pub crypto.PublicKey, member string) string {
	enc := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		if member == "x" {
			return enc(k.X.FillBytes(make([]byte, size)))
		}
		return enc(k.Y.FillBytes(make([]byte, size)))
	case *rsa.PublicKey:
		if member == "n" {
			return enc(k.N.Bytes())
		}
		return enc(big.NewInt(int64(k.E)).Bytes())
	}
	return ""
}

func jwkJSON(t *testing.T, m map[string]any) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKeyChecks: kong/db/schema/entities/keys.lua and typedefs.pem/jwk,
// with JWKs and PEM pairs as go-kong's key tests send them.
func TestKeyChecks(t *testing.T) {
	p := newTestPKI(t)
	rsaKey := p.rsa.Key.(*rsa.PrivateKey)
	enc := base64.RawURLEncoding.EncodeToString
	rsaPublic := map[string]any{"kty": "RSA", "kid": "k", "alg": "A256GCM", "n": b64(&rsaKey.PublicKey, "n"), "e": b64(&rsaKey.PublicKey, "e")}
	rsaPrivate := map[string]any{"kty": "RSA", "kid": "k", "n": b64(&rsaKey.PublicKey, "n"), "e": b64(&rsaKey.PublicKey, "e"),
		"d": enc(rsaKey.D.Bytes()), "p": enc(rsaKey.Primes[0].Bytes()), "q": enc(rsaKey.Primes[1].Bytes())}
	otherD := map[string]any{}
	for k, v := range rsaPrivate {
		otherD[k] = v
	}
	otherD["q"] = enc(big.NewInt(7).Bytes())
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ec := map[string]any{"kty": "EC", "kid": "k", "crv": "P-256", "x": b64(p.ec.Cert.PublicKey, "x"), "y": b64(p.ec.Cert.PublicKey, "y")}
	offCurve := map[string]any{"kty": "EC", "kid": "k", "crv": "P-256", "x": b64(p.ec.Cert.PublicKey, "x"), "y": b64(p.ec2.Cert.PublicKey, "y")}
	q := jsonString
	withJWK := func(kid string, jwk map[string]any) string {
		return `{"kid":"` + kid + `","jwk":` + q(jwkJSON(t, jwk)) + `}`
	}
	tests := []struct{ name, input, want string }{
		{"rsa public jwk", withJWK("k", rsaPublic), ""},
		{"rsa private jwk", withJWK("k", rsaPrivate), ""},
		{"rsa jwk with a wrong prime", withJWK("k", otherD), "could not load JWK, likely not a valid key"},
		{"ec jwk", withJWK("k", ec), ""},
		{"ec point off the curve", withJWK("k", offCurve), "could not load JWK, likely not a valid key"},
		{"ed25519 jwk", withJWK("k", map[string]any{"kty": "OKP", "kid": "k", "crv": "Ed25519", "x": enc(edPub), "d": enc(edPriv.Seed())}), ""},
		{"kid differs", withJWK("other", rsaPublic), "schema violation (kid in jwk.kid must be equal to keys.kid)"},
		{"jwk not json", `{"kid":"k","jwk":"{"}`, "schema violation (could not json decode jwk string)"},
		{"unknown kty", withJWK("k", map[string]any{"kty": "oct", "kid": "k", "k": "AAAA"}), "could not load JWK, likely not a valid key"},
		{"jwk member of the wrong type", withJWK("k", map[string]any{"kty": "RSA", "kid": "k", "n": rsaPublic["n"], "e": rsaPublic["e"], "use": 1}),
			"use: expected a string"},
		{"pem pair", `{"kid":"k","pem":{"private_key":` + q(p.ec.KeyPEM) + `,"public_key":` + q(p.ec.PublicKeyPEM(t)) + `}}`, ""},
		{"pem public only", `{"kid":"k","pem":{"public_key":` + q(p.rsa.PublicKeyPEM(t)) + `}}`, ""},
		{"pem pair mismatch", `{"kid":"k","pem":{"private_key":` + q(p.ec.KeyPEM) + `,"public_key":` + q(p.ec2.PublicKeyPEM(t)) + `}}`,
			"pem: public key does not match private key"},
		{"pem bad private", `{"kid":"k","pem":{"private_key":"nope"}}`, "pem: could not load private key"},
		{"pem empty", `{"kid":"k","pem":{}}`, "pem: at least one of these fields must be non-empty: 'private_key', 'public_key'"},
		{"both formats", `{"kid":"k","jwk":` + q(jwkJSON(t, rsaPublic)) + `,"pem":{"public_key":` + q(p.rsa.PublicKeyPEM(t)) + `}}`,
			"only one or none of these fields must be set: 'jwk', 'pem'"},
		{"no format", `{"kid":"k"}`, "at least one of these fields must be non-empty: 'jwk', 'pem'"},
		{"kid missing", `{"jwk":"{}"}`, "kid: required field missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkValidation(t, Keys, tc.input, tc.want)
		})
	}
}
