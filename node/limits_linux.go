package node

import (
	"fmt"
	"syscall"
)

// raiseNofile sets the descriptor limit as nginx_main_worker_rlimit_nofile
// asks: want 0 ("auto") raises the soft limit to the hard one (Go's
// runtime already does at start; this makes it explicit and reported), a
// number sets both, which needs privilege to raise the hard limit. It
// returns the soft limit in force.
func raiseNofile(want int) (int, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("reading the descriptor limit: %w", err)
	}
	next := lim
	if want == 0 {
		next.Cur = lim.Max
	} else {
		next.Cur, next.Max = uint64(want), max(lim.Max, uint64(want))
	}
	if next != lim {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next); err != nil {
			return int(min(lim.Cur, 1<<30)), fmt.Errorf("nginx_main_worker_rlimit_nofile %d: setting the descriptor limit: %w", want, err)
		}
	}
	return int(min(next.Cur, 1<<30)), nil
}
