package entity

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// PEM parsing for the certificate and key kinds, standing in for the
// lua-resty-openssl calls Kong makes (x509.new, pkey.new). No message
// built here quotes its input: a key is secret, and an error about it may
// end up in a log.

// errNoPEM is input without a PEM block of the wanted kind.
var errNoPEM = errors.New("no PEM data found")

// firstPEMBlock returns the first PEM block of s whose type wants accepts.
func firstPEMBlock(s string, wants func(typ string) bool) (*pem.Block, error) {
	rest := []byte(s)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errNoPEM
		}
		if wants(block.Type) {
			return block, nil
		}
	}
}

// ParseCertificatePEM parses the first certificate of a PEM string.
func ParseCertificatePEM(s string) (*x509.Certificate, error) {
	block, err := firstPEMBlock(s, func(typ string) bool { return typ == "CERTIFICATE" })
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(block.Bytes)
}

// ParsePrivateKeyPEM parses the first private key of a PEM string: PKCS #1
// and SEC 1 ("RSA PRIVATE KEY", "EC PRIVATE KEY") or PKCS #8.
func ParsePrivateKeyPEM(s string) (crypto.Signer, error) {
	block, err := firstPEMBlock(s, func(typ string) bool { return strings.HasSuffix(typ, "PRIVATE KEY") })
	if err != nil {
		return nil, err
	}
	return parsePrivateKeyDER(block.Type, block.Bytes)
}

func parsePrivateKeyDER(typ string, der []byte) (crypto.Signer, error) {
	switch typ {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(der)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(der)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	return signer, nil
}

// parsePublicKeyPEM parses the first public key of a PEM string: PKIX
// ("PUBLIC KEY") or PKCS #1 ("RSA PUBLIC KEY").
func parsePublicKeyPEM(s string) (crypto.PublicKey, error) {
	block, err := firstPEMBlock(s, func(typ string) bool { return typ == "PUBLIC KEY" || typ == "RSA PUBLIC KEY" })
	if err != nil {
		return nil, err
	}
	if block.Type == "RSA PUBLIC KEY" {
		return x509.ParsePKCS1PublicKey(block.Bytes)
	}
	return x509.ParsePKIXPublicKey(block.Bytes)
}

// equalPublicKeys compares two public keys of any supported type.
func equalPublicKeys(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// keyType names a public key's algorithm, as OpenSSL's key type id does.
func keyType(k crypto.PublicKey) string {
	switch k.(type) {
	case *rsa.PublicKey:
		return "rsa"
	case *ecdsa.PublicKey:
		return "ec"
	case ed25519.PublicKey:
		return "ed25519"
	case *ecdh.PublicKey:
		return "ecdh"
	}
	return fmt.Sprintf("%T", k)
}

// checkCertificate is Kong's typedefs.certificate validator.
func checkCertificate(v any) string {
	if _, err := ParseCertificatePEM(v.(string)); err != nil {
		return "invalid certificate: x509.new: " + err.Error()
	}
	return ""
}

// checkKey is Kong's typedefs.key validator.
func checkKey(v any) string {
	if _, err := ParsePrivateKeyPEM(v.(string)); err != nil {
		return "invalid key: pkey.new: " + safeKeyError(err)
	}
	return ""
}

// safeKeyError keeps a key parser's message only when it is one of the
// generic ones; anything else is summarised, so no byte of a key can
// reach a response or a log through an error.
func safeKeyError(err error) string {
	if errors.Is(err, errNoPEM) {
		return errNoPEM.Error()
	}
	return "could not parse the key"
}
