package plugins

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// file-log (kong/plugins/file-log/handler.lua): the log phase appends
// the exchange's serialize record as one JSON line to path (opened
// O_WRONLY|O_CREAT|O_APPEND, mode 0644, kept open per path, or opened
// for each write with reopen). Unlike Kong, which writes in nginx's log
// phase after the answer went out, the write happens in a background
// queue per path, so a slow disk never holds a request; a full queue
// drops its oldest line. custom_fields_by_lua runs in the background
// before the line is queued (luafields.go).

func init() { register("file-log", buildFileLog) }

type fileLogConfig struct {
	Path         string            `json:"path"`
	Reopen       bool              `json:"reopen"`
	CustomFields map[string]string `json:"custom_fields_by_lua"`
}

// fileLogQueue bounds the lines waiting for the disk, per path.
var fileLogQueue = queueConfig{MaxBatchSize: 256, MaxEntries: 10000, MaxRetryTime: -1}

func buildFileLog(env *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	var c fileLogConfig
	if err := decodeConfig(p, &c); err != nil {
		return hooks, err
	}
	custom, err := compileCustomFields(env, "file-log "+p.ID, c.CustomFields)
	if err != nil {
		return hooks, err
	}
	w := &fileLogWriter{path: c.Path, reopen: c.Reopen}
	q := env.queue(fmt.Sprintf("file-log:%s:%t", c.Path, c.Reopen), fileLogQueue, w.write)
	hooks[proxy.PhaseLog] = func(x pdk.Exchange) { custom.logEntry(x, q, "\n") }
	return hooks, nil
}

// fileLogWriter appends batches of lines to one file.
type fileLogWriter struct {
	path   string
	reopen bool
	mu     sync.Mutex
	f      *os.File
}

func (w *fileLogWriter) write(_ context.Context, batch [][]byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil && w.reopen {
		_ = w.f.Close()
		w.f = nil
	}
	if w.f == nil {
		f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("failed to open the file: %w", err)
		}
		w.f = f
	}
	_, err := w.f.Write(bytes.Join(batch, nil))
	if w.reopen {
		_ = w.f.Close()
		w.f = nil
	}
	return err
}
