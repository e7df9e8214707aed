package admin

import (
	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/store"
)

// kind is one registered entity kind as the generic handlers use it: its
// schema, its table and (through the table's Foreign list) the nested
// endpoints. Every kind comes from the entity registry; nothing here is
// listed by hand.
type kind struct {
	ek     *entity.Kind
	name   string // path segment, e.g. "services"
	nested string // path segment under a parent, e.g. "key-auth"
	schema *entity.Schema
	table  store.Table
	// nestedOnly: served only under its parent's path (targets).
	nestedOnly bool
	// noForeign lists the foreign fields without a /kind/{id}/field
	// endpoint (entity.Kind.NoForeignEndpoint).
	noForeign []string
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

// uniqueFields are the fields a reference can name a k entity by instead
// of its id: the endpoint key, then the other unique fields (Kong's
// resolve_foreign in kong/db/dao/init.lua tries each).
func (k *kind) uniqueFields() []string {
	var out []string
	if k.table.KeyField != "" && k.table.KeyScope == "" {
		out = append(out, k.table.KeyField)
	}
	return append(out, k.table.Unique...)
}

// kindSet is the Admin API's view of the registry, taken once by New.
type kindSet struct {
	byPath  map[string]*kind // Admin API path segment -> kind
	nested  map[string]*kind // path segment under a parent -> kind
	byTable map[string]*kind // table name -> kind
	order   []*kind          // registration order: GET /endpoints, GET /tags
}

func registeredKinds() kindSet {
	ks := kindSet{byPath: map[string]*kind{}, nested: map[string]*kind{}, byTable: map[string]*kind{}}
	for _, ek := range entity.Kinds() {
		k := &kind{ek: ek, name: ek.Path, nested: ek.NestedPath, schema: ek.Schema, table: store.TableOf(ek),
			nestedOnly: ek.NestedOnly, noForeign: ek.NoForeignEndpoint}
		ks.byPath[k.name] = k
		ks.nested[k.nested] = k
		ks.byTable[k.table.Name] = k
		ks.order = append(ks.order, k)
	}
	return ks
}
