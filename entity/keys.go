package entity

import (
	"bytes"
	"encoding/json"
	"strings"
)

// KeySets is Kong's key_sets schema (kong/db/schema/entities/key_sets.lua),
// served at /key-sets (its admin_api_name).
var KeySets = &Schema{
	Name:        "key_sets",
	EndpointKey: "name",
	Fields: []Field{
		uuidField("id"),
		{Name: "name", Type: TypeString, Unique: true, MaxBytes: MaxIndexedBytes},
		tagsField(),
		timestampField("created_at"),
		timestampField("updated_at"),
	},
}

// keyFormats is Kong's KEY_FORMATS (kong/constants.lua).
var keyFormats = []string{"jwk", "pem"}

// Keys is Kong's keys schema (kong/db/schema/entities/keys.lua): a JWK or
// a PEM pair, optionally in a key set whose deletion takes it along. The
// pair (kid, set) is unique: the store keeps Kong's cache_key
// "keys:<kid>:<set id>" in a unique column.
var Keys = &Schema{
	Name:        "keys",
	EndpointKey: "name",
	// Kong's cache_key, for the ids of a declarative file's keys.
	KongCacheKey: []string{"kid", "set"},
	Fields: []Field{
		uuidField("id"),
		{Name: "set", Type: TypeForeign, Reference: "key_sets", OnDelete: OnDeleteCascade},
		{Name: "name", Type: TypeString, Unique: true, MaxBytes: MaxIndexedBytes},
		{Name: "kid", Type: TypeString, Required: true, MaxBytes: MaxIndexedBytes},
		{Name: "jwk", Type: TypeString, Extra: encryptedReferenceable},
		{Name: "pem", Type: TypeRecord, Check: checkPEMKeys, Fields: []Field{
			{Name: "private_key", Type: TypeString, Extra: encryptedReferenceable},
			{Name: "public_key", Type: TypeString, Extra: referenceable},
		}},
		tagsField(),
		timestampField("created_at"),
		timestampField("updated_at"),
	},
	Checks: []Check{
		MutuallyExclusive(keyFormats),
		AtLeastOneOf(keyFormats),
		CustomCheck(checkKeyMaterial),
	},
}

// checkPEMKeys is Kong's typedefs.pem: at least one key, each loads, and
// a private and a public key given together are one pair.
func checkPEMKeys(v any) string {
	rec := v.(map[string]any)
	priv, _ := rec["private_key"].(string)
	pub, _ := rec["public_key"].(string)
	if priv == "" && pub == "" {
		return "at least one of these fields must be non-empty: 'private_key', 'public_key'"
	}
	var pubKey any
	if pub != "" {
		k, err := parsePublicKeyPEM(pub)
		if err != nil {
			return "could not load public key"
		}
		pubKey = k
	}
	if priv != "" {
		k, err := ParsePrivateKeyPEM(priv)
		if err != nil {
			return "could not load private key"
		}
		if pubKey != nil && !equalPublicKeys(k.Public(), pubKey) {
			return "public key does not match private key"
		}
	}
	return ""
}

// checkKeyMaterial is the custom check of Kong's keys schema: a JWK must
// be JSON, name the key's kid, load as a key and fit Kong's jwk record.
func checkKeyMaterial(doc map[string]any, fe FieldErrors) {
	s, ok := doc["jwk"].(string)
	if !ok {
		return
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var jwk map[string]any
	if err := dec.Decode(&jwk); err != nil || jwk == nil {
		fe.Entity("could not json decode jwk string")
		return
	}
	if jwk["kid"] != doc["kid"] {
		fe.Entity("kid in jwk.kid must be equal to keys.kid")
		return
	}
	if _, err := parseJWK(jwk); err != nil {
		fe.Entity("could not load JWK, likely not a valid key")
		return
	}
	sub := FieldErrors{}
	validateRecord(jwkFields, jwk, sub)
	if len(sub) > 0 {
		fe.Entity(strings.Join(flattenErrors(sub), "; "))
	}
}

// jwkFields is Kong's typedefs.jwk record: the members a JWK may have.
var jwkFields = func() []Field {
	var fs []Field
	for _, name := range []string{"issuer", "kty", "use", "key_ops", "alg", "kid", "x5u", "x5c", "x5t", "x5t#S256",
		"k", "x", "y", "crv", "n", "e", "d", "p", "q", "dp", "dq", "qi", "oth", "r", "t"} {
		f := Field{Name: name, Type: TypeString}
		switch name {
		case "key_ops", "x5c":
			f = Field{Name: name, Type: TypeArray, Elements: &Field{Type: TypeString}}
		case "kid":
			f.Required = true
		}
		fs = append(fs, f)
	}
	return fs
}()

// KeySet is Kong's key set entity: a named group of keys.
type KeySet struct {
	ID        string   `json:"id"`
	Name      *string  `json:"name"`
	Tags      []string `json:"tags"`
	CreatedAt int64    `json:"created_at"`
	UpdatedAt int64    `json:"updated_at"`
}

// PEMKeys is a key's PEM pair; PrivateKey is a secret: never log it.
type PEMKeys struct {
	PrivateKey *string `json:"private_key"`
	PublicKey  *string `json:"public_key"`
}

// Key is Kong's key entity. JWK and PEM may hold private keys: never log
// them.
type Key struct {
	ID        string      `json:"id"`
	Set       *ForeignKey `json:"set"`
	Name      *string     `json:"name"`
	KID       string      `json:"kid"`
	JWK       *string     `json:"jwk"`
	PEM       *PEMKeys    `json:"pem"`
	Tags      []string    `json:"tags"`
	CreatedAt int64       `json:"created_at"`
	UpdatedAt int64       `json:"updated_at"`
}
