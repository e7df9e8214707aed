package entity

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// parseJWK loads a JSON Web Key (RFC 7517/7518/8037) the way
// lua-resty-openssl's pkey.new{format = "JWK"} does for Kong: RSA, EC
// (P-256, P-384, P-521) and OKP (Ed25519, X25519) keys, public or private.
// It returns the public key; its errors never quote the key.
func parseJWK(jwk map[string]any) (crypto.PublicKey, error) {
	kty, _ := jwk["kty"].(string)
	switch kty {
	case "RSA":
		return parseRSAJWK(jwk)
	case "EC":
		return parseECJWK(jwk)
	case "OKP":
		return parseOKPJWK(jwk)
	}
	return nil, errors.New("unsupported kty")
}

// jwkBytes decodes a base64url member; missing or malformed is an error.
func jwkBytes(jwk map[string]any, name string) ([]byte, error) {
	s, ok := jwk[name].(string)
	if !ok || s == "" {
		return nil, fmt.Errorf("jwk member %s missing", name)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("jwk member %s is not base64url", name)
	}
	return b, nil
}

func parseRSAJWK(jwk map[string]any) (crypto.PublicKey, error) {
	n, err := jwkBytes(jwk, "n")
	if err != nil {
		return nil, err
	}
	e, err := jwkBytes(jwk, "e")
	if err != nil {
		return nil, err
	}
	if len(e) > 4 {
		return nil, errors.New("rsa exponent too large")
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	if pub.N.Sign() <= 0 || pub.E < 2 {
		return nil, errors.New("invalid rsa public key")
	}
	if _, ok := jwk["d"]; !ok {
		return pub, nil
	}
	return pub, checkRSAPrivateJWK(jwk, pub)
}

// checkRSAPrivateJWK checks d (and p, q when given) against the public key.
func checkRSAPrivateJWK(jwk map[string]any, pub *rsa.PublicKey) error {
	d, err := jwkBytes(jwk, "d")
	if err != nil {
		return err
	}
	priv := &rsa.PrivateKey{PublicKey: *pub, D: new(big.Int).SetBytes(d)}
	if _, ok := jwk["p"]; !ok {
		return nil // OpenSSL takes n, e and d alone
	}
	p, err := jwkBytes(jwk, "p")
	if err != nil {
		return err
	}
	q, err := jwkBytes(jwk, "q")
	if err != nil {
		return err
	}
	priv.Primes = []*big.Int{new(big.Int).SetBytes(p), new(big.Int).SetBytes(q)}
	return priv.Validate()
}

var jwkCurves = map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}

func parseECJWK(jwk map[string]any) (crypto.PublicKey, error) {
	crv, _ := jwk["crv"].(string)
	curve, ok := jwkCurves[crv]
	if !ok {
		return nil, errors.New("unsupported curve")
	}
	x, err := jwkBytes(jwk, "x")
	if err != nil {
		return nil, err
	}
	y, err := jwkBytes(jwk, "y")
	if err != nil {
		return nil, err
	}
	size := (curve.Params().BitSize + 7) / 8
	if len(x) > size || len(y) > size {
		return nil, errors.New("ec coordinate too long")
	}
	// An uncompressed point; ecdh validates that it lies on the curve.
	point := append([]byte{4}, append(leftPad(x, size), leftPad(y, size)...)...)
	if _, err := ecdhCurve(crv).NewPublicKey(point); err != nil {
		return nil, errors.New("ec point not on curve")
	}
	pub := &ecdsa.PublicKey{Curve: curve, X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
	if _, ok := jwk["d"]; !ok {
		return pub, nil
	}
	d, err := jwkBytes(jwk, "d")
	if err != nil {
		return nil, err
	}
	priv, err := ecdhCurve(crv).NewPrivateKey(leftPad(d, size))
	if err != nil || !priv.PublicKey().Equal(mustECDHPublic(crv, point)) {
		return nil, errors.New("ec private key does not match its point")
	}
	return pub, nil
}

func ecdhCurve(crv string) ecdh.Curve {
	switch crv {
	case "P-384":
		return ecdh.P384()
	case "P-521":
		return ecdh.P521()
	}
	return ecdh.P256()
}

func mustECDHPublic(crv string, point []byte) *ecdh.PublicKey {
	k, _ := ecdhCurve(crv).NewPublicKey(point)
	return k
}

func leftPad(b []byte, size int) []byte {
	if len(b) >= size {
		return b
	}
	return append(make([]byte, size-len(b)), b...)
}

func parseOKPJWK(jwk map[string]any) (crypto.PublicKey, error) {
	crv, _ := jwk["crv"].(string)
	x, err := jwkBytes(jwk, "x")
	if err != nil {
		return nil, err
	}
	switch crv {
	case "Ed25519":
		if len(x) != ed25519.PublicKeySize {
			return nil, errors.New("ed25519 public key of the wrong size")
		}
		return okpPrivateMatches(jwk, ed25519.PublicKey(x), func(d []byte) (crypto.PublicKey, bool) {
			if len(d) != ed25519.SeedSize {
				return nil, false
			}
			return ed25519.NewKeyFromSeed(d).Public(), true
		})
	case "X25519":
		pub, err := ecdh.X25519().NewPublicKey(x)
		if err != nil {
			return nil, err
		}
		return okpPrivateMatches(jwk, pub, func(d []byte) (crypto.PublicKey, bool) {
			k, err := ecdh.X25519().NewPrivateKey(d)
			if err != nil {
				return nil, false
			}
			return k.PublicKey(), true
		})
	}
	return nil, errors.New("unsupported curve")
}

// okpPrivateMatches checks d, when given, against the public key x.
func okpPrivateMatches(jwk map[string]any, pub crypto.PublicKey, derive func([]byte) (crypto.PublicKey, bool)) (crypto.PublicKey, error) {
	if _, ok := jwk["d"]; !ok {
		return pub, nil
	}
	d, err := jwkBytes(jwk, "d")
	if err != nil {
		return nil, err
	}
	derived, ok := derive(d)
	if !ok || !equalPublicKeys(derived, pub) {
		return nil, errors.New("okp private key does not match its public key")
	}
	return pub, nil
}
