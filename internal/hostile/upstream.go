package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// upstream serves the bodies the attacks ask the proxy for. Every answer
// is bounded in time, so that a proxy that stops reading (as it should
// once it caps what it buffers) cannot keep the script from ending.
type upstream struct {
	bigSize     int64         // bytes of /big
	endlessMax  int64         // bytes /endless sends before it stalls
	endlessFor  time.Duration // how long /endless lasts before it aborts
	writeWithin time.Duration // deadline for writing any one answer
	log         zerolog.Logger

	// Per body path: requests started and still running, so the attack
	// can tell how often the proxy asked (retries) and wait for the end.
	bigStarted, bigRunning         atomic.Int64
	endlessStarted, endlessRunning atomic.Int64
	endlessSeen                    sync.Map // the id query of every /endless request
}

// upstreamStats is the upstream's GET /_stats.
type upstreamStats struct {
	BigStarted     int64 `json:"big_started"`
	BigRunning     int64 `json:"big_running"`
	EndlessStarted int64 `json:"endless_started"`
	EndlessRunning int64 `json:"endless_running"`
}

// chunk is what the big bodies are written from, so the upstream's own
// memory stays small however much it sends.
var chunk = func() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

func runUpstream(args []string, log zerolog.Logger) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:9000", "address to listen on")
	bigMiB := fs.Int64("big-mib", 512, "size of /big in MiB")
	endlessMiB := fs.Int64("endless-max-mib", 1024, "MiB /endless sends before it stalls (bounds the proxy's memory if it buffers)")
	endlessFor := fs.Duration("endless-for", 15*time.Second, "how long /endless lasts before the upstream aborts it")
	writeWithin := fs.Duration("write-within", 40*time.Second, "deadline for writing one answer")
	fs.Parse(args)
	u := &upstream{bigSize: *bigMiB << 20, endlessMax: *endlessMiB << 20, endlessFor: *endlessFor,
		writeWithin: *writeWithin, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("/big", u.big)
	mux.HandleFunc("/endless", u.endless)
	mux.HandleFunc("/_stats", u.stats)
	mux.HandleFunc("/", u.small)
	server := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		server.Shutdown(shutdown)
	}()
	log.Info().Str("listen", *listen).Msg("hostile upstream listening")
	if err := server.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}

// small is the ordinary answer, after reading whatever body came.
func (u *upstream) small(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "ok\n")
}

func (u *upstream) stats(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(upstreamStats{u.bigStarted.Load(), u.bigRunning.Load(),
		u.endlessStarted.Load(), u.endlessRunning.Load()})
}

// big answers bigSize bytes with a Content-Length.
func (u *upstream) big(w http.ResponseWriter, r *http.Request) {
	u.bigStarted.Add(1)
	u.bigRunning.Add(1)
	defer u.bigRunning.Add(-1)
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(u.writeWithin))
	w.Header().Set("Content-Length", strconv.FormatInt(u.bigSize, 10))
	w.Header().Set("Content-Type", "application/octet-stream")
	for left := u.bigSize; left > 0; {
		n, err := w.Write(chunk[:min(left, int64(len(chunk)))])
		if err != nil {
			u.log.Info().Err(err).Int64("unsent", left).Msg("/big: the proxy stopped reading")
			return
		}
		left -= int64(n)
	}
}

// endless sends a chunked body that never ends: endlessMax bytes as fast
// as the proxy takes them, then nothing, until endlessFor has passed and
// the upstream gives up and drops the connection without the last chunk.
func (u *upstream) endless(w http.ResponseWriter, r *http.Request) {
	u.endlessStarted.Add(1)
	if _, again := u.endlessSeen.LoadOrStore(r.URL.Query().Get("id"), true); again {
		// A retry by the proxy: fail it at once, so one request's figures
		// are those of one endless body and the retries end quickly.
		u.log.Info().Msg("/endless: the proxy asked again; aborting at once")
		panic(http.ErrAbortHandler)
	}
	u.endlessRunning.Add(1)
	defer u.endlessRunning.Add(-1)
	start := time.Now()
	rc := http.NewResponseController(w)
	end := start.Add(u.endlessFor)
	rc.SetWriteDeadline(end)
	w.Header().Set("Content-Type", "application/octet-stream")
	var sent int64
	for sent < u.endlessMax && time.Now().Before(end) {
		n, err := w.Write(chunk)
		sent += int64(n)
		if err != nil {
			u.log.Info().Err(err).Int64("sent", sent).Msg("/endless: the proxy stopped reading")
			return
		}
		rc.Flush()
	}
	u.log.Info().Int64("sent", sent).Dur("took", time.Since(start)).Msg("/endless: stalling")
	select {
	case <-time.After(time.Until(end)):
	case <-r.Context().Done():
	}
	u.log.Info().Int64("sent", sent).Msg("/endless: aborting the body")
	panic(http.ErrAbortHandler)
}
