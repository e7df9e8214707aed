package parallel

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// TestFor: every index runs once, and the error returned is the one of
// the lowest failing index, whatever worker met it first.
func TestFor(t *testing.T) {
	cases := []struct {
		name    string
		n       int
		failing []int
		want    string
	}{
		{"none", 0, nil, ""},
		{"fewer than a chunk", 10, nil, ""},
		{"many", 10000, nil, ""},
		{"one failing", 10000, []int{7000}, "index 7000"},
		{"the lowest of several", 10000, []int{9000, 4000, 6000}, "index 4000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ran := make([]atomic.Int32, tc.n)
			fails := map[int]bool{}
			for _, i := range tc.failing {
				fails[i] = true
			}
			err := For(tc.n, func(i int) error {
				ran[i].Add(1)
				if fails[i] {
					return fmt.Errorf("index %d", i)
				}
				return nil
			})
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("got error %q, want %q", got, tc.want)
			}
			if len(tc.failing) > 0 {
				return // a worker stops at its error: the rest of its chunk does not run
			}
			for i := range ran {
				if n := ran[i].Load(); n != 1 {
					t.Fatalf("index %d ran %d times, want 1", i, n)
				}
			}
		})
	}
	if err := For(1, func(int) error { return errors.New("x") }); err == nil {
		t.Fatal("one index failing: got nil, want its error")
	}
}
