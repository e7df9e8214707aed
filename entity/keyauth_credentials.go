package entity

// KeyAuthCredentials is key-auth's credential (kong/plugins/key-auth/daos.lua):
// a key, made up when not given, named by it in paths.
var KeyAuthCredentials = &Schema{
	Name:        "keyauth_credentials",
	EndpointKey: "key",
	CacheKey:    []string{"key"},
	TTL:         true,
	Fields:      credentialFields(autoString("key", true)),
}

// KeyAuthCredential is one key of a consumer.
type KeyAuthCredential struct {
	Credential
	Key string `json:"key"`
}
