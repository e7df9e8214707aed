package node

import (
	"github.com/grapevine-gw/grapevine/internal/parallel"
	"github.com/grapevine-gw/grapevine/store"
)

// decodeRows decodes every row of a whole configuration on every core
// (GOMAXPROCS workers over contiguous chunks); a row of a table that is
// not a configuration table is an error, as in configState.put.
func decodeRows(rows map[string][]store.Row) ([]decodedRow, error) {
	type ref struct {
		table string
		row   *store.Row
	}
	var refs []ref
	for table, list := range rows {
		for i := range list {
			refs = append(refs, ref{table, &list[i]})
		}
	}
	out := make([]decodedRow, len(refs))
	err := parallel.For(len(refs), func(i int) error {
		d, err := decodeRow(refs[i].table, *refs[i].row)
		out[i] = d
		return err
	})
	return out, err
}
