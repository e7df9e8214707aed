package gossip

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// serf and memberlist log through the standard library's log package with
// a "[LEVEL] " prefix. Their [ERR] and [WARN] lines are what an operator
// must see (a peer with the wrong encryption key, a port that cannot be
// reached), so they go to zerolog at error and warn; [INFO] and [DEBUG]
// are mostly normal probes and stay at debug. Some errors repeat for
// every packet (a peer with the wrong key sends many), so each kind of
// line is limited to logBurst per logPeriod, and the next one that passes
// says how many were left out.
const (
	logBurst  = 5
	logPeriod = 10 * time.Second
	// logKinds bounds the limiter's memory; past it the windows start over.
	logKinds = 256
)

// zerologWriter routes serf's and memberlist's log lines into zerolog.
type zerologWriter struct {
	log   zerolog.Logger
	limit *logLimiter

	// mu guards closed; Write holds it shared while it logs.
	mu sync.RWMutex
	// closed is set by Shutdown: memberlist's timers can still log a
	// failed send on the closed socket after it returned, and nothing
	// after shutdown is news (a test's logger is gone by then).
	closed bool
}

// close drops every line written from now on, once the lines being
// written have been.
func (w *zerologWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

func newZerologWriter(log zerolog.Logger) *zerologWriter {
	return &zerologWriter{log: log.With().Str("component", "serf").Logger(), limit: &logLimiter{}}
}

func (w *zerologWriter) Write(p []byte) (int, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return len(p), nil
	}
	line := string(bytes.TrimRight(p, "\n"))
	level, msg := splitLevel(line)
	if level < zerolog.WarnLevel {
		w.log.Debug().Msg(line)
		return len(p), nil
	}
	ok, suppressed := w.limit.allow(lineKind(msg), time.Now())
	if !ok {
		return len(p), nil
	}
	ev := w.log.WithLevel(level)
	if suppressed > 0 {
		ev = ev.Int("suppressed_since_last", suppressed)
	}
	ev.Msg(msg)
	return len(p), nil
}

// splitLevel reads the "[ERR] " style prefix; a line without one is debug.
func splitLevel(line string) (zerolog.Level, string) {
	for prefix, level := range map[string]zerolog.Level{"[ERR] ": zerolog.ErrorLevel, "[WARN] ": zerolog.WarnLevel} {
		if strings.HasPrefix(line, prefix) {
			return level, strings.TrimPrefix(line, prefix)
		}
	}
	return zerolog.DebugLevel, line
}

// lineKind is what a message says without its details: up to its second
// colon ("memberlist: Decrypt packet failed"), where the addresses and
// causes follow.
func lineKind(msg string) string {
	first := strings.IndexByte(msg, ':')
	if first < 0 {
		return msg
	}
	if second := strings.IndexByte(msg[first+1:], ':'); second >= 0 {
		return msg[:first+1+second]
	}
	return msg
}

// logLimiter lets logBurst lines of each kind through per logPeriod.
type logLimiter struct {
	// mu guards windows.
	mu      sync.Mutex
	windows map[string]*logWindow
}

type logWindow struct {
	start      time.Time
	passed     int
	suppressed int
}

// allow reports whether a line of this kind may be logged now, and how
// many of its kind were left out before it.
func (l *logLimiter) allow(kind string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.windows == nil || len(l.windows) > logKinds {
		l.windows = map[string]*logWindow{}
	}
	w := l.windows[kind]
	if w == nil || now.Sub(w.start) >= logPeriod {
		suppressed := 0
		if w != nil {
			suppressed = w.suppressed
		}
		l.windows[kind] = &logWindow{start: now, passed: 1}
		return true, suppressed
	}
	if w.passed < logBurst {
		w.passed++
		return true, 0
	}
	w.suppressed++
	return false, 0
}

// logPanic logs a recovered panic with the stack of the goroutine that
// panicked; call it from the deferred function that recovered.
func logPanic(log zerolog.Logger, r any, what string) {
	log.Error().Str("panic", fmt.Sprint(r)).Str("stack", string(debug.Stack())).Msg(what + " panicked")
}
