package entity

// The kinds Grapevine serves, one line each, parents before children as
// Kong lists its core entities (kong/constants.lua CORE_ENTITIES). A new
// kind is one more line here, its schema file and its migration.
func init() {
	mustRegister(&Kind{Schema: Services, Config: true, Decode: DecodeAs[Service]()})
	mustRegister(&Kind{Schema: Routes, Config: true, Decode: DecodeAs[Route]()})

	// Load balancing: upstreams and the targets behind them.
	mustRegister(&Kind{Schema: Upstreams, Config: true, Decode: DecodeAs[Upstream]()})
	mustRegister(&Kind{Schema: Targets, Config: true, Decode: DecodeAs[Target](), NestedOnly: true})
}
