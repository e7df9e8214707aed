// Package benchkit holds what the cluster benchmarks under node/internal
// share: their main's logger and exit, a fresh database, an upstream that
// answers 200, waiting for gossip membership, and how they print a
// duration. Not shipped.
package benchkit

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/node"
	"github.com/grapevine-gw/grapevine/store"
)

// Ms prints a duration in milliseconds with one decimal.
func Ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

// FreshDatabase creates and bootstraps a database named name on the server.
func FreshDatabase(ctx context.Context, serverDSN, name string) (string, error) {
	conn, err := pgx.Connect(ctx, serverDSN)
	if err != nil {
		return "", fmt.Errorf("connecting to %s: %w", serverDSN, err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("dropping %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", fmt.Errorf("creating %s: %w", name, err)
	}
	u, _ := url.Parse(serverDSN)
	u.Path = "/" + name
	st, err := store.Open(ctx, store.Config{DSN: u.String()})
	if err != nil {
		return "", err
	}
	defer st.Close()
	return u.String(), st.Bootstrap(ctx)
}

func WaitForMembers(nodes []*node.Node, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, n := range nodes {
		for {
			resp, err := http.Get("http://" + n.AdminAddr().String() + "/cluster")
			count := 0
			if err == nil {
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				count = strings.Count(string(raw), `"status":"alive"`)
			}
			if count == want {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s sees %d alive members after %s, want %d", n.Name(), count, timeout, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// Upstream answers 200 to everything.
type Upstream struct {
	URL string
	srv *http.Server
}

// StartUpstream starts one on a loopback port.
func StartUpstream() (*Upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the upstream: %w", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })}
	go func() { _ = srv.Serve(ln) }()
	return &Upstream{URL: "http://" + ln.Addr().String(), srv: srv}, nil
}

// Close stops it.
func (u *Upstream) Close() { _ = u.srv.Close() }

// Main runs a benchmark's body with a console logger on stderr at level,
// bounded by timeout when it is above zero, and exits 1 when it fails.
func Main(level zerolog.Level, timeout time.Duration, run func(context.Context, zerolog.Logger) error) {
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(level).With().Timestamp().Logger()
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	err := run(ctx, log)
	cancel()
	if err != nil {
		log.Error().Err(err).Msg("benchmark failed")
		os.Exit(1)
	}
}
