// Package main is the rolling-restart benchmark behind
// scripts/chaos-rolling-restart. It is not shipped. Against a PostgreSQL
// the script started, it runs three real `grapevine start` processes on
// 127.0.80.1-3 and an upstream, puts steady keep-alive load through the
// three proxy ports (each client connection picks the next address when it
// connects, as DNS round-robin clients do, and never retries a request),
// restarts each node in turn and reports the requests sent, those that
// failed by kind, and the latency percentiles.
//
// Restart modes: "inplace" sends SIGUSR2 (the node hands its sockets to a
// new process and drains), "sigterm" stops the node with SIGTERM and starts
// it again once it has exited.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/internal/keepload"
)

func main() {
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, NoColor: true}).With().Timestamp().Logger()
	if err := run(os.Args[1:], log); err != nil {
		log.Error().Err(err).Msg("chaos failed")
		os.Exit(1)
	}
}

type options struct {
	binary, dsn, mode, workDir string
	clients                    int
	settle                     time.Duration
}

func run(args []string, log zerolog.Logger) error {
	var o options
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.StringVar(&o.binary, "grapevine", "", "path of the grapevine binary")
	fs.StringVar(&o.dsn, "dsn", "", "PostgreSQL the nodes share (migrated)")
	fs.StringVar(&o.mode, "mode", "inplace", "restart mode: inplace (SIGUSR2) or sigterm")
	fs.StringVar(&o.workDir, "dir", os.TempDir(), "where configs and logs go")
	fs.IntVar(&o.clients, "clients", 16, "client connections")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "load before the first and after each restart")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.binary == "" || o.dsn == "" || (o.mode != "inplace" && o.mode != "sigterm") {
		return fmt.Errorf("want -grapevine, -dsn and -mode inplace|sigterm")
	}
	up, err := startUpstream()
	if err != nil {
		return err
	}
	defer up.Close()
	c := &cluster{binary: o.binary, dir: o.workDir, log: log}
	defer c.stopAll()
	if err := c.start(o.dsn, []string{"127.0.80.1", "127.0.80.2", "127.0.80.3"}); err != nil {
		return err
	}
	if err := c.configure("http://" + up.Addr().String()); err != nil {
		return err
	}
	l := keepload.Start(c.proxyAddrs(), o.clients)
	time.Sleep(o.settle)
	for i := range c.nodes {
		log.Info().Str("node", c.nodes[i].host).Str("mode", o.mode).Msg("restarting")
		began := time.Now()
		if err := c.restart(i, o.mode); err != nil {
			l.Stop()
			return err
		}
		log.Info().Str("node", c.nodes[i].host).Dur("took", time.Since(began)).Msg("restarted")
		time.Sleep(o.settle)
	}
	l.Stop().Print(os.Stdout, "rolling restart ("+o.mode+") of 3 nodes under keep-alive load, no client retries")
	return nil
}

// startUpstream serves "ok" on a loopback port.
func startUpstream() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends when the listener closes
	return ln, nil
}
