package entity

// The kinds Grapevine serves, one line each, parents before children as
// Kong lists its core entities (kong/constants.lua CORE_ENTITIES). A new
// kind is one more line here, its schema file and its migration.
//
// Services, routes, plugins, consumers and key-auth credentials are most
// of a big configuration: they decode stored documents with readers of
// their own (storedjson.go), the others with encoding/json.
func init() {
	// Certificates come before services: a service's client_certificate
	// refers to them.
	mustRegister(&Kind{Schema: Certificates, Config: true, Decode: DecodeAs[Certificate]()})
	mustRegister(&Kind{Schema: Services, Config: true, Decode: decodeStored(readService)})
	mustRegister(&Kind{Schema: Routes, Config: true, Decode: decodeStored(readRoute)})

	// Load balancing: upstreams and the targets behind them.
	mustRegister(&Kind{Schema: Upstreams, Config: true, Decode: DecodeAs[Upstream]()})
	mustRegister(&Kind{Schema: Targets, Config: true, Decode: DecodeAs[Target](), NestedOnly: true})

	// TLS: SNIs, CA certificates, keys and key sets (issue 18). Keys are
	// not configuration of the proxy yet: no part of it uses them.
	mustRegister(&Kind{Schema: SNIs, Config: true, Decode: DecodeAs[SNI](), NoForeignEndpoint: []string{"certificate"}})
	mustRegister(&Kind{Schema: CACertificates, Config: true, Decode: DecodeAs[CACertificate]()})
	mustRegister(&Kind{Schema: KeySets, Path: "key-sets", Decode: DecodeAs[KeySet]()})
	mustRegister(&Kind{Schema: Keys, Decode: DecodeAs[Key]()})

	// Consumers and their credentials (kong/plugins/*/daos.lua). Not part
	// of the routing configuration: the proxy finds credentials by key.
	mustRegister(&Kind{Schema: Consumers, Decode: decodeStored(readConsumer)})
	// Plugins, global or scoped to a route, service or consumer; the
	// proxy builds its plugin chains from them.
	mustRegister(&Kind{Schema: Plugins, Config: true, Decode: decodeStored(readPlugin)})
	mustRegister(&Kind{Schema: KeyAuthCredentials, Path: "key-auths", NestedPath: "key-auth", Decode: decodeStored(readKeyAuthCredential)})
	mustRegister(&Kind{Schema: BasicAuthCredentials, Path: "basic-auths", NestedPath: "basic-auth", Decode: DecodeAs[BasicAuthCredential]()})
	mustRegister(&Kind{Schema: HMACAuthCredentials, Path: "hmac-auths", NestedPath: "hmac-auth", Decode: DecodeAs[HMACAuthCredential]()})
	mustRegister(&Kind{Schema: JWTSecrets, Path: "jwts", NestedPath: "jwt", Decode: DecodeAs[JWTSecret]()})
	mustRegister(&Kind{Schema: ACLs, Decode: DecodeAs[ACL]()})
	mustRegister(&Kind{Schema: OAuth2Credentials, Path: "oauth2", Decode: DecodeAs[OAuth2Credential]()})
}
