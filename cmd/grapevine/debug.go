package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/rs/zerolog"

	listenpkg "github.com/grapevine-gw/grapevine/internal/listen"
)

// startDebug serves Go's profiler on debug_listen: CPU and heap profiles,
// goroutine dumps and execution traces (/debug/pprof/trace?seconds=N), the
// evidence the README's benchmark section reasons from. It shows the
// process's internals, so it is off unless the key is set, and meant for
// loopback. Its socket is handed to a successor on SIGUSR2 like the others.
// The returned function stops it.
func startDebug(ctx context.Context, addr string, sockets *listenpkg.Sockets, log zerolog.Logger) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := sockets.Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("addr", addr).Msg("debug listener stopped")
		}
	}()
	log.Warn().Str("addr", ln.Addr().String()).Msg("debug_listen: Go's profiler is served here; keep it off networks others reach")
	return func() { _ = srv.Close() }, nil
}
