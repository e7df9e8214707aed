package admin

import (
	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/store"
)

// kind describes one entity kind to the generic handlers: its schema, its
// table and (through the table's Foreign list) the nested endpoints. A new
// entity (consumers, plugins, upstreams) needs one more entry here.
type kind struct {
	name   string // path segment, e.g. "services"
	schema *entity.Schema
	table  store.Table
}

// foreign returns the table's reference for field, if any.
func (k *kind) foreign(field string) (store.Foreign, bool) {
	for _, f := range k.table.Foreign {
		if f.Field == field {
			return f, true
		}
	}
	return store.Foreign{}, false
}

// foreignTo returns the field of k that references table parent, if any.
func (k *kind) foreignTo(parent string) (store.Foreign, bool) {
	for _, f := range k.table.Foreign {
		if f.Table == parent {
			return f, true
		}
	}
	return store.Foreign{}, false
}

func defaultKinds() map[string]*kind {
	kinds := []*kind{
		{name: "services", schema: entity.Services, table: store.Services},
		{name: "routes", schema: entity.Routes, table: store.Routes},
	}
	m := make(map[string]*kind, len(kinds))
	for _, k := range kinds {
		m[k.name] = k
	}
	return m
}

// kindOrder is the order GET /endpoints and GET /tags walk the kinds in.
var kindOrder = []string{"services", "routes"}
