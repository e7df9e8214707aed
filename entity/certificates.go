package entity

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Certificates is Kong's certificates schema
// (kong/db/schema/entities/certificates.lua). Its snis field is transient:
// the admin package turns it into SNI entities in the same transaction
// (kong/db/dao/certificates.lua).
var Certificates = &Schema{
	Name: "certificates",
	Fields: []Field{
		uuidField("id"),
		timestampField("created_at"),
		timestampField("updated_at"),
		{Name: "cert", Type: TypeString, Required: true, Check: checkCertificate, Extra: referenceable},
		{Name: "key", Type: TypeString, Required: true, Check: checkKey, Extra: encryptedReferenceable},
		{Name: "cert_alt", Type: TypeString, Check: checkCertificate, Extra: referenceable},
		{Name: "key_alt", Type: TypeString, Check: checkKey, Extra: encryptedReferenceable},
		tagsField(),
		{Name: "snis", Type: TypeArray, Transient: true, Elements: &Field{Type: TypeString, Check: checkWildcardName}},
	},
	Checks: []Check{
		MutuallyRequired{"cert_alt", "key_alt"},
		CustomCheck(checkCertMatchesKey),
		CustomCheck(checkAltCertMatchesKey),
		CustomCheck(checkAltCertType),
	},
}

var (
	referenceable          = map[string]any{"referenceable": true}
	encryptedReferenceable = map[string]any{"referenceable": true, "encrypted": true}
)

// checkCertMatchesKey: the key is the certificate's.
func checkCertMatchesKey(doc map[string]any, fe FieldErrors) {
	if !certMatchesKey(doc["cert"], doc["key"]) {
		fe.Entity("certificate does not match key")
	}
}

func checkAltCertMatchesKey(doc map[string]any, fe FieldErrors) {
	if isEmpty(doc["cert_alt"]) || isEmpty(doc["key_alt"]) {
		return
	}
	if !certMatchesKey(doc["cert_alt"], doc["key_alt"]) {
		fe.Entity("alternative certificate does not match key")
	}
}

// checkAltCertType: the alternative certificate is there for clients of
// the other key type (RSA beside ECDSA), so both of one type is refused.
func checkAltCertType(doc map[string]any, fe FieldErrors) {
	if isEmpty(doc["cert"]) || isEmpty(doc["cert_alt"]) {
		return
	}
	cert, err1 := ParseCertificatePEM(doc["cert"].(string))
	alt, err2 := ParseCertificatePEM(doc["cert_alt"].(string))
	if err1 != nil || err2 != nil {
		return // reported by the fields' own checks
	}
	if keyType(cert.PublicKey) == keyType(alt.PublicKey) {
		fe.Entity("certificate and alternative certificate need to have different type " +
			"(e.g. RSA and ECDSA), the provided certificates were both of the same type")
	}
}

func certMatchesKey(certPEM, keyPEM any) bool {
	c, _ := certPEM.(string)
	k, _ := keyPEM.(string)
	cert, err := ParseCertificatePEM(c)
	if err != nil {
		return false
	}
	key, err := ParsePrivateKeyPEM(k)
	if err != nil {
		return false
	}
	return equalPublicKeys(key.Public(), cert.PublicKey)
}

// SNIs is Kong's snis schema (kong/db/schema/entities/snis.lua). Kong's
// certificates DAO deletes a certificate's SNIs with it although the
// schema names no on_delete rule; the admin package does the same.
var SNIs = &Schema{
	Name:        "snis",
	EndpointKey: "name",
	Fields: []Field{
		uuidField("id"),
		{Name: "name", Type: TypeString, Required: true, Unique: true, Check: checkWildcardName, MaxBytes: MaxIndexedBytes},
		timestampField("created_at"),
		timestampField("updated_at"),
		tagsField(),
		{Name: "certificate", Type: TypeForeign, Reference: "certificates", Required: true},
	},
}

// checkWildcardName is Kong's typedefs.wildcard_host validator
// (validate_wildcard_host in kong/db/schema/typedefs.lua): one wildcard,
// as the first or the last character, and no IP or port.
func checkWildcardName(v any) string {
	host := v.(string)
	if i := strings.IndexByte(host, '*'); i >= 0 {
		if i != 0 && i != len(host)-1 {
			return "wildcard must be leftmost or rightmost character"
		}
		if strings.Count(host, "*") > 1 {
			return "only one wildcard must be specified"
		}
		host = strings.Replace(host, "*", "wildcard", 1)
	}
	hp, err := normalizeIP(host)
	if err != "" && err != "invalid port number" {
		return "invalid value: " + host
	}
	if err == "" && !hp.isName {
		return "must not be an IP"
	}
	if err != "" || hp.port != 0 || strings.HasSuffix(host, ":0") {
		return "must not have a port"
	}
	return ""
}

// CACertificates is Kong's ca_certificates schema
// (kong/db/schema/entities/ca_certificates.lua): one CA certificate, still
// valid, its SHA-256 digest unique.
var CACertificates = &Schema{
	Name: "ca_certificates",
	Fields: []Field{
		uuidField("id"),
		timestampField("created_at"),
		timestampField("updated_at"),
		{Name: "cert", Type: TypeString, Required: true, Check: checkCertificate},
		{Name: "cert_digest", Type: TypeString, Unique: true, MaxBytes: MaxIndexedBytes},
		tagsField(),
	},
	Checks:  []Check{CustomCheck(checkCACertificate)},
	OnWrite: func(_, doc map[string]any) { setCertDigest(doc) },
}

const pemCertificateTag = "-----BEGIN CERTIFICATE-----"

func checkCACertificate(doc map[string]any, fe FieldErrors) {
	s := doc["cert"].(string)
	if strings.Count(s, pemCertificateTag) > 1 {
		fe.Entity("please submit only one certificate at a time")
		return
	}
	cert, err := ParseCertificatePEM(s)
	if err != nil {
		return // reported by the field's check
	}
	if cert.NotAfter.Before(time.Now()) {
		fe.Entity(`certificate expired, "Not After" time is in the past`)
		return
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		fe.Entity(`certificate does not appear to be a CA because it is missing the "CA" basic constraint`)
	}
}

// setCertDigest is Kong's on_write transformation: cert_digest is the
// hex SHA-256 of the certificate's DER, whatever the client sent.
func setCertDigest(doc map[string]any) {
	cert, err := ParseCertificatePEM(doc["cert"].(string))
	if err != nil {
		return
	}
	sum := sha256.Sum256(cert.Raw)
	doc["cert_digest"] = hex.EncodeToString(sum[:])
}

// Certificate is Kong's certificate entity: a certificate and its key,
// optionally a second pair of the other key type. Key and KeyAlt are
// secrets: never log them.
type Certificate struct {
	ID        string   `json:"id"`
	CreatedAt int64    `json:"created_at"`
	UpdatedAt int64    `json:"updated_at"`
	Cert      string   `json:"cert"`
	Key       string   `json:"key"`
	CertAlt   *string  `json:"cert_alt"`
	KeyAlt    *string  `json:"key_alt"`
	Tags      []string `json:"tags"`
}

// SNI is Kong's SNI entity: a server name served with a certificate.
type SNI struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	CreatedAt   int64       `json:"created_at"`
	UpdatedAt   int64       `json:"updated_at"`
	Tags        []string    `json:"tags"`
	Certificate *ForeignKey `json:"certificate"`
}

// CACertificate is Kong's CA certificate entity: a CA that services may
// trust for their upstreams.
type CACertificate struct {
	ID         string   `json:"id"`
	CreatedAt  int64    `json:"created_at"`
	UpdatedAt  int64    `json:"updated_at"`
	Cert       string   `json:"cert"`
	CertDigest string   `json:"cert_digest"`
	Tags       []string `json:"tags"`
}
