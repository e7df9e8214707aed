package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// logSampler lets through one log line per key per interval and counts the
// ones it held back, so a dead upstream that fails every request is
// visible at the default level without flooding the log. Safe from any
// goroutine.
type logSampler struct {
	interval time.Duration
	keys     sync.Map // key string → *sampledKey
}

type sampledKey struct {
	last    atomic.Int64 // unix nanoseconds of the last line let through
	dropped atomic.Int64 // lines held back since
}

// allow reports whether a line for key may be written now and, if so, how
// many were held back before it.
func (l *logSampler) allow(key string, now time.Time) (ok bool, dropped int64) {
	v, found := l.keys.Load(key)
	if !found {
		v, _ = l.keys.LoadOrStore(key, &sampledKey{})
	}
	k := v.(*sampledKey)
	last := k.last.Load()
	if now.UnixNano()-last < int64(l.interval) || !k.last.CompareAndSwap(last, now.UnixNano()) {
		k.dropped.Add(1)
		return false, 0
	}
	return true, k.dropped.Swap(0)
}
