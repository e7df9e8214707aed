package memstore

import (
	"github.com/grapevine-gw/grapevine/entity/declarative"
	"github.com/grapevine-gw/grapevine/store"
)

// Rows turns a parsed declarative configuration into the store's rows by
// table, built by store.RowOf as an import builds them.
func Rows(cfg *declarative.Config) (map[string][]store.Row, error) {
	out := make(map[string][]store.Row, len(cfg.Kinds))
	for _, kd := range cfg.Kinds {
		list, err := store.RowsOf(kd.Kind, kd.Docs)
		if err != nil {
			return nil, err
		}
		out[kd.Kind.Name()] = append(out[kd.Kind.Name()], list...)
	}
	return out, nil
}
