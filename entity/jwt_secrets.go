package entity

import (
	"crypto/x509"
	"encoding/pem"
)

// jwtAlgorithms are the algorithms a jwt credential may name.
var jwtAlgorithms = []any{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
	"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}

// jwtKeyAlgorithms need rsa_public_key (the patterns of Kong's check).
var jwtKeyAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}

// JWTSecrets is jwt's credential (kong/plugins/jwt/daos.lua): a key
// (the iss claim by default) and an HMAC secret, both made up when not
// given, or a public key for the asymmetric algorithms.
var JWTSecrets = &Schema{
	Name:        "jwt_secrets",
	EndpointKey: "key",
	CacheKey:    []string{"key"},
	Fields: credentialFields(
		autoString("key", true),
		autoString("secret", false),
		Field{Name: "rsa_public_key", Type: TypeString},
		Field{Name: "algorithm", Type: TypeString, Default: "HS256", OneOf: jwtAlgorithms},
	),
	Checks: []Check{RenderedCheck{Render: jwtKeyCheckJSON(), Run: checkJWTPublicKey}},
}

// JWTSecret is one jwt credential of a consumer.
type JWTSecret struct {
	Credential
	Key          string  `json:"key"`
	Secret       *string `json:"secret"`
	RSAPublicKey *string `json:"rsa_public_key"`
	Algorithm    string  `json:"algorithm"`
}

func jwtKeyCheckJSON() any {
	patterns := make([]any, len(jwtKeyAlgorithms))
	for i, a := range jwtKeyAlgorithms {
		patterns[i] = "^" + a + "$"
	}
	return map[string]any{"conditional": map[string]any{
		"if_field": "algorithm", "if_match": map[string]any{"match_any": map[string]any{"patterns": patterns}},
		"then_field": "rsa_public_key", "then_match": map[string]any{"required": true},
	}}
}

// checkJWTPublicKey: the asymmetric algorithms need a key that parses.
func checkJWTPublicKey(doc map[string]any, fe FieldErrors) {
	alg, _ := doc["algorithm"].(string)
	if !containsValue(stringsToAny(jwtKeyAlgorithms), alg) {
		return
	}
	key, _ := doc["rsa_public_key"].(string)
	switch {
	case key == "":
		fe["rsa_public_key"] = "required field missing"
	case !validPEMKey(key):
		fe["rsa_public_key"] = "invalid key"
	default:
		return
	}
	fe.Entity("failed conditional validation given value of field 'algorithm'")
}

// validPEMKey tells a PEM public or private key OpenSSL would load.
func validPEMKey(s string) bool {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return false
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS1PublicKey(block.Bytes); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return true
	}
	_, err := x509.ParseECPrivateKey(block.Bytes)
	return err == nil
}
