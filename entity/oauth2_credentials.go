package entity

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"net/url"
)

// OAuth2Credentials is oauth2's application credential
// (kong/plugins/oauth2/daos.lua): a client id and secret, made up when not
// given; with hash_secret the secret is stored only as its hash.
var OAuth2Credentials = &Schema{
	Name:        "oauth2_credentials",
	EndpointKey: "client_id",
	CacheKey:    []string{"client_id"},
	Fields: []Field{
		uuidField("id"),
		timestampField("created_at"),
		consumerField(),
		{Name: "name", Type: TypeString, Required: true},
		autoString("client_id", true),
		autoString("client_secret", false),
		{Name: "hash_secret", Type: TypeBoolean, Required: true, Default: false},
		{Name: "redirect_uris", Type: TypeArray, Elements: &Field{Type: TypeString, Check: checkRedirectURI}},
		tagsField(),
		{Name: "client_type", Type: TypeString, Required: true, Default: "confidential", OneOf: []any{"confidential", "public"}},
	},
	OnWrite: hashOAuth2Secret,
}

// OAuth2Credential is one oauth2 application of a consumer.
type OAuth2Credential struct {
	Credential
	Name         string   `json:"name"`
	ClientID     string   `json:"client_id"`
	ClientSecret *string  `json:"client_secret"`
	HashSecret   bool     `json:"hash_secret"`
	RedirectURIs []string `json:"redirect_uris"`
	ClientType   string   `json:"client_type"`
}

// checkRedirectURI is daos.lua's validate_uri: a scheme and a host, no
// fragment.
func checkRedirectURI(v any) string {
	s := v.(string)
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "cannot parse '" + s + "'"
	}
	if u.Fragment != "" || u.RawFragment != "" {
		return "fragment not allowed in '" + s + "'"
	}
	return ""
}

// hashOAuth2Secret is daos.lua's transformation: a write with hash_secret
// stores the client secret as its PBKDF2 hash (the only algorithm
// kong/plugins/oauth2/secret.lua enables).
func hashOAuth2Secret(input, doc map[string]any) {
	if _, set := input["hash_secret"]; !set && input["client_secret"] == nil {
		return
	}
	secret, ok := doc["client_secret"].(string)
	if doc["hash_secret"] != true || !ok {
		return
	}
	if _, set := input["client_secret"]; !set && isPBKDF2Hash(secret) {
		return // already stored hashed
	}
	doc["client_secret"] = HashOAuth2Secret(secret)
}

// PBKDF2 settings of kong/plugins/oauth2/secret.lua.
const (
	pbkdf2Iterations = 10000
	pbkdf2KeyLen     = 32
	pbkdf2SaltLen    = 16
)

// HashOAuth2Secret is Kong's PHC string for a secret:
// $pbkdf2-sha512$i=10000,l=32$<salt>$<hash>, base64 without padding.
func HashOAuth2Secret(secret string) string {
	salt := make([]byte, pbkdf2SaltLen)
	rand.Read(salt)
	key, err := pbkdf2.Key(sha512.New, secret, salt, pbkdf2Iterations, pbkdf2KeyLen)
	if err != nil {
		panic("entity: pbkdf2: " + err.Error()) // only for FIPS-refused settings
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$pbkdf2-sha512$i=%d,l=%d$%s$%s", pbkdf2Iterations, pbkdf2KeyLen,
		enc.EncodeToString(salt), enc.EncodeToString(key))
}

func isPBKDF2Hash(s string) bool {
	return len(s) > 15 && s[:15] == "$pbkdf2-sha512$"
}
