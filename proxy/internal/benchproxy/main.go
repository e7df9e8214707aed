// Package main is benchproxy: it runs the proxy with one service and one route "/" for
// scripts/bench-proxy, without the rest of the product. It serves through
// proxy.Server exactly as `grapevine start` does (same Snapshot, Swap and
// request path); only the configuration source differs.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8000", "proxy_listen")
	upstream := flag.String("upstream", "127.0.0.1:8080", "upstream host:port")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile here until shutdown")
	flag.Parse()
	log := zerolog.New(os.Stderr).With().Timestamp().Logger().Level(zerolog.InfoLevel)
	if *cpuProfile != "" {
		stop, err := startProfile(*cpuProfile)
		if err != nil {
			log.Fatal().Err(err).Msg("benchproxy")
		}
		defer stop()
	}
	if err := run(*listen, *upstream, log); err != nil {
		log.Error().Err(err).Msg("benchproxy")
	}
}

func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func run(listen, upstream string, log zerolog.Logger) error {
	snap, err := snapshot(upstream)
	if err != nil {
		return err
	}
	cfg := proxy.DefaultConfig()
	cfg.Listen = listen
	cfg.Version = "bench"
	cfg.Logger = log
	srv := proxy.New(cfg)
	srv.Swap(snap)
	if err := srv.Start(context.Background()); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// snapshot is one service (the upstream) and one route "/" with Kong's
// defaults.
func snapshot(upstream string) (*proxy.Snapshot, error) {
	host, portText, err := net.SplitHostPort(upstream)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, err
	}
	svc := entity.Service{
		ID: "00000000-0000-4000-8000-000000000001", Protocol: "http", Host: host, Port: port,
		Retries: 5, ConnectTimeout: 60000, ReadTimeout: 60000, WriteTimeout: 60000, Enabled: true,
	}
	route := entity.Route{
		ID: "00000000-0000-4000-8000-000000000002", Protocols: []string{"http", "https"},
		Paths: []string{"/"}, StripPath: true, PathHandling: "v0", HTTPSRedirectStatusCode: 426,
		Service: &entity.ForeignKey{ID: svc.ID},
	}
	snap, warnings := proxy.NewSnapshot([]entity.Service{svc}, []entity.Route{route})
	if len(warnings) > 0 {
		return nil, warnings[0]
	}
	return snap, nil
}
