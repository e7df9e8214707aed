package entity

// The kinds Grapevine serves, one line each, parents before children as
// Kong lists its core entities (kong/constants.lua CORE_ENTITIES). A new
// kind is one more line here, its schema file and its migration.
func init() {
	// Certificates come before services: a service's client_certificate
	// refers to them.
	mustRegister(&Kind{Schema: Certificates, Config: true, Decode: DecodeAs[Certificate]()})
	mustRegister(&Kind{Schema: Services, Config: true, Decode: DecodeAs[Service]()})
	mustRegister(&Kind{Schema: Routes, Config: true, Decode: DecodeAs[Route]()})

	// Load balancing: upstreams and the targets behind them.
	mustRegister(&Kind{Schema: Upstreams, Config: true, Decode: DecodeAs[Upstream]()})
	mustRegister(&Kind{Schema: Targets, Config: true, Decode: DecodeAs[Target](), NestedOnly: true})

	// TLS: SNIs, CA certificates, keys and key sets (issue 18). Keys are
	// not configuration of the proxy yet: no part of it uses them.
	mustRegister(&Kind{Schema: SNIs, Config: true, Decode: DecodeAs[SNI](), NoForeignEndpoint: []string{"certificate"}})
	mustRegister(&Kind{Schema: CACertificates, Config: true, Decode: DecodeAs[CACertificate]()})
	mustRegister(&Kind{Schema: KeySets, Path: "key-sets", Decode: DecodeAs[KeySet]()})
	mustRegister(&Kind{Schema: Keys, Decode: DecodeAs[Key]()})
}
