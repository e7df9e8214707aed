package entity

import (
	"crypto/sha1"
	"encoding/hex"
)

// BasicAuthCredentials is basic-auth's credential
// (kong/plugins/basic-auth/daos.lua): the password is stored and returned
// only as its salted hash.
var BasicAuthCredentials = &Schema{
	Name:        "basicauth_credentials",
	EndpointKey: "username",
	CacheKey:    []string{"username"},
	Fields: credentialFields(
		Field{Name: "username", Type: TypeString, Required: true, Unique: true, MaxBytes: MaxIndexedBytes},
		Field{Name: "password", Type: TypeString, Required: true},
	),
	OnWrite: hashBasicAuthPassword,
}

// BasicAuthCredential is one username and password hash of a consumer.
type BasicAuthCredential struct {
	Credential
	Username string `json:"username"`
	Password string `json:"password"`
}

// hashBasicAuthPassword stores a password that the write sets as Kong's
// hash: hex SHA-1 of the password followed by the consumer's id
// (kong/plugins/basic-auth/crypto.lua). A write that leaves the password
// out keeps the stored hash.
func hashBasicAuthPassword(input, doc map[string]any) {
	password, ok := input["password"].(string)
	if !ok {
		return
	}
	consumer, _ := doc["consumer"].(map[string]any)
	id, _ := consumer["id"].(string)
	doc["password"] = HashBasicAuthPassword(password, id)
}

// HashBasicAuthPassword is the stored form of a basic-auth password.
func HashBasicAuthPassword(password, consumerID string) string {
	sum := sha1.Sum([]byte(password + consumerID))
	return hex.EncodeToString(sum[:])
}
