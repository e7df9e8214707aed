// Package parallel owns the one way Grapevine spreads a loop over the
// cores: contiguous chunks of the index range, one goroutine per
// GOMAXPROCS, for the big loops of an import and a full reload (decoding
// and encoding tens of thousands of entities). It holds no state.
package parallel

import (
	"runtime"
	"sync"
)

// minChunk is the fewest indexes worth a goroutine of their own.
const minChunk = 256

// For runs fn for 0..n-1 on up to GOMAXPROCS goroutines, each taking a
// contiguous chunk in order and stopping at its first error. It returns
// the error of the lowest index that failed: chunks are in index order,
// so that is the first error in the loop's order.
func For(n int, fn func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), max(n/minChunk, 1))
	if workers <= 1 {
		for i := range n {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, workers)
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w * chunk; i < min((w+1)*chunk, n); i++ {
				if err := fn(i); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
