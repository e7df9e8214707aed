// Package main is echo-upstream, a tiny HTTP upstream for the demo and the
// benchmarks: it answers every request with a JSON echo of what it received
// (method, path, query, headers), so a user can see what the proxy sent.
package main

import (
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"time"

	"github.com/rs/zerolog"
)

type echo struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   string              `json:"query"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to listen on")
	flag.Parse()
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	server := &http.Server{Addr: *listen, Handler: http.HandlerFunc(handle), ReadHeaderTimeout: 10 * time.Second}
	log.Info().Str("listen", *listen).Msg("echo upstream listening")
	if err := server.ListenAndServe(); err != nil {
		log.Fatal().Err(err).Msg("echo upstream stopped")
	}
}

func handle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(echo{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Headers: r.Header})
}
