package node

import (
	"runtime"
	"sync"

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
	err := parallelFor(len(refs), func(i int) error {
		d, err := decodeRow(refs[i].table, *refs[i].row)
		out[i] = d
		return err
	})
	return out, err
}

// parallelFor runs fn for 0..n-1 on GOMAXPROCS goroutines, each taking a
// contiguous chunk; it returns the first error met.
func parallelFor(n int, fn func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), max(n/256, 1))
	if workers <= 1 {
		for i := range n {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	chunk := (n + workers - 1) / workers
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * chunk; i < min((w+1)*chunk, n); i++ {
				if err := fn(i); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
