package entity

// HMACAuthCredentials is hmac-auth's credential
// (kong/plugins/hmac-auth/daos.lua): a username and a secret, made up when
// not given.
var HMACAuthCredentials = &Schema{
	Name:        "hmacauth_credentials",
	EndpointKey: "username",
	CacheKey:    []string{"username"},
	Fields: credentialFields(
		Field{Name: "username", Type: TypeString, Required: true, Unique: true, MaxBytes: MaxIndexedBytes},
		autoString("secret", false),
	),
}

// HMACAuthCredential is one hmac-auth username and secret of a consumer.
type HMACAuthCredential struct {
	Credential
	Username string  `json:"username"`
	Secret   *string `json:"secret"`
}
