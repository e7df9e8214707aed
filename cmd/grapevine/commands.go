package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	listenpkg "github.com/grapevine-gw/grapevine/internal/listen"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/node"
	"github.com/grapevine-gw/grapevine/node/config"
	"github.com/grapevine-gw/grapevine/store"
)

// confFlag adds -c/--conf to a flag set.
func confFlag(fs *flag.FlagSet) *string {
	path := fs.String("c", os.Getenv("GRAPEVINE_CONF"), "configuration file in kong.conf format (env GRAPEVINE_CONF)")
	fs.StringVar(path, "conf", *path, "same as -c")
	return path
}

func loadConfig(path string) (config.Config, error) {
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		return config.Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

// configFromFlags parses a command that takes only -c and loads its configuration.
func configFromFlags(name string, args []string, out io.Writer) (config.Config, error) {
	fs := newFlags(name, name+" [-c FILE]", out)
	confPath := confFlag(fs)
	if err := parseFlags(fs, args, 0); err != nil {
		return config.Config{}, err
	}
	return loadConfig(*confPath)
}

func runStart(ctx context.Context, args []string, out io.Writer) error {
	cfg, err := configFromFlags("start", args, out)
	if err != nil {
		return err
	}
	log := node.NewLogger(os.Stderr, cfg.LogLevel)
	quota := cgroupCPUQuota()
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(startProcs(runtime.NumCPU(), quota))
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	sockets, err := listenpkg.NewSockets(os.Environ())
	if err != nil {
		return err
	}
	restart := make(chan os.Signal, 1)
	signal.Notify(restart, syscall.SIGUSR2)
	defer signal.Stop(restart)
	n := node.New(cfg, log)
	n.SetSockets(sockets)
	reportReadiness(n, log)
	stopDebug, err := startDebug(ctx, cfg.DebugListen, sockets, log)
	if err != nil {
		return fmt.Errorf("debug_listen: %w", err)
	}
	defer stopDebug()
	if err := n.Start(ctx); err != nil {
		return err
	}
	sockets.CloseUnused()
	reloadOnHangup(ctx, n)
	log.Info().Str("node_id", n.ID()).Str("version", node.Version).Int("gomaxprocs", runtime.GOMAXPROCS(0)).Int("cpus", runtime.NumCPU()).Float64("cpu_quota", quota).Msg("grapevine started")
	waitForStop(ctx, restart, sockets, log)
	log.Info().Dur("bound", cfg.WorkerShutdownTimeout).Msg("stopping: leaving the cluster and draining connections")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.WorkerShutdownTimeout)
	defer cancel()
	if err := n.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	log.Info().Msg("grapevine stopped")
	return nil
}

// waitForStop returns when the node is to stop: on SIGTERM or SIGINT, or
// on SIGUSR2 once a successor took over its sockets (a failed handover is
// logged and the node goes on serving).
func waitForStop(ctx context.Context, restart <-chan os.Signal, sockets *listenpkg.Sockets, log zerolog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-restart:
			log.Info().Msg("SIGUSR2: starting a successor with this node's sockets")
			pid, err := handover(sockets)
			if err != nil {
				log.Error().Err(err).Msg("in-place restart failed; this node goes on serving")
				continue
			}
			log.Info().Int("pid", os.Getpid()).Int("successor_pid", pid).Msg("the successor serves")
			return
		}
	}
}

// reloadOnHangup makes SIGHUP reload the node's configuration until ctx
// ends: a DB-less node reads its declarative_config again (Kong's
// reload), one with a database reloads everything from it.
func reloadOnHangup(ctx context.Context, n *node.Node) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = n.Reload(ctx) // the node logs what it did
			}
		}
	}()
}

func runMigrations(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("migrations", "migrations bootstrap|up|status|reset [--yes] [-c FILE]", out)
	confPath := confFlag(fs)
	yes := fs.Bool("yes", false, "confirm 'reset' (it drops every Grapevine table)")
	action, rest := splitAction(args)
	if err := parseFlags(fs, rest, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(*confPath)
	if err != nil {
		return err
	}
	if action == "reset" && !*yes {
		return errors.New("'migrations reset' drops all configuration; run it again with --yes to confirm")
	}
	st, err := store.Open(ctx, node.StoreConfig(cfg, ""))
	if err != nil {
		return fmt.Errorf("opening database: %w", err)
	}
	defer st.Close()
	return migrate(ctx, st, action, out, fs)
}

// splitAction takes the first argument as the action when it is not a flag,
// so both "migrations up -c f" and "migrations -c f up" work.
func splitAction(args []string) (string, []string) {
	for i, arg := range args {
		if len(arg) > 0 && arg[0] != '-' && (i == 0 || !takesValue(args[i-1])) {
			return arg, append(append([]string{}, args[:i]...), args[i+1:]...)
		}
	}
	return "", args
}

func takesValue(flagArg string) bool {
	switch flagArg {
	case "-c", "--c", "-conf", "--conf", "-admin", "--admin", "-ca", "--ca", "-tls-cert", "--tls-cert", "-tls-key", "--tls-key",
		"-p", "--p", "-prefix", "--prefix":
		return true
	}
	return false
}

func migrate(ctx context.Context, st *store.Store, action string, out io.Writer, fs *flag.FlagSet) error {
	switch action {
	case "bootstrap":
		if err := st.Bootstrap(ctx); err != nil {
			if errors.Is(err, store.ErrAlreadyBootstrapped) {
				fmt.Fprintln(out, "Database already bootstrapped")
				return nil
			}
			return fmt.Errorf("bootstrapping database: %w", err)
		}
		fmt.Fprintln(out, "Database is up-to-date")
		return nil
	case "up":
		applied, err := st.Up(ctx)
		if err != nil {
			return fmt.Errorf("running migrations: %w", err)
		}
		for _, name := range applied {
			fmt.Fprintf(out, "migrated %s\n", name)
		}
		fmt.Fprintf(out, "%d migrations processed\nDatabase is up-to-date\n", len(applied))
		return nil
	case "status":
		return printMigrationStatus(ctx, st, out)
	case "reset":
		if err := st.Reset(ctx); err != nil {
			return fmt.Errorf("resetting database: %w", err)
		}
		fmt.Fprintln(out, "Database cleared")
		return nil
	}
	fmt.Fprintf(fs.Output(), "unknown or missing action %q\n", action)
	fs.Usage()
	return errUsage
}

func printMigrationStatus(ctx context.Context, st *store.Store, out io.Writer) error {
	status, err := st.MigrationStatus(ctx)
	if err != nil {
		return fmt.Errorf("reading migration status: %w", err)
	}
	if !status.Bootstrapped {
		fmt.Fprintln(out, "Database needs bootstrapping or is older than Grapevine 0.1; run 'grapevine migrations bootstrap'")
		return nil
	}
	fmt.Fprintf(out, "Executed migrations:\n")
	for _, name := range status.Executed {
		fmt.Fprintf(out, "  %s\n", name)
	}
	if len(status.Pending) == 0 {
		fmt.Fprintln(out, "Database is up-to-date")
		return nil
	}
	fmt.Fprintf(out, "Pending migrations (run 'grapevine migrations up'):\n")
	for _, name := range status.Pending {
		fmt.Fprintf(out, "  %s\n", name)
	}
	return nil
}

func runHealth(ctx context.Context, args []string, out io.Writer) error {
	cfg, err := configFromFlags("health", args, out)
	if err != nil {
		return err
	}
	if len(cfg.AdminListen) == 0 {
		return errors.New("admin_listen is off; health needs the Admin API")
	}
	base := adminURL(cfg.AdminListen[0])
	var pin *pinning
	if strings.HasPrefix(base, "https:") {
		pin = &pinning{certs: cfg.AdminSSLCert}
	}
	client, err := tlsFlags{}.client(pin)
	if err != nil {
		return err
	}
	return checkHealth(ctx, client, base, out)
}

// adminURL turns an admin_listen entry into a URL a local client can
// reach: https when it is flagged ssl.
func adminURL(entry string) string {
	host, port, _ := net.SplitHostPort(listenpkg.AddrOf(entry))
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http://"
	if ls, err := listenpkg.Parse(entry); err == nil && len(ls) == 1 && ls[0].Has("ssl") {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port)
}

func checkHealth(ctx context.Context, client *http.Client, baseURL string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/status", nil)
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("grapevine is not running at %s: %w", baseURL, err)
	}
	defer resp.Body.Close()
	var status struct {
		Database struct {
			Reachable bool `json:"reachable"`
		} `json:"database"`
		Proxy struct {
			Accepting    *bool  `json:"accepting"`
			AcceptError  string `json:"accept_error"`
			FailingSince string `json:"failing_since"`
		} `json:"proxy"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&status); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unexpected answer from %s/status (HTTP %d)", baseURL, resp.StatusCode)
	}
	if p := status.Proxy; p.Accepting != nil && !*p.Accepting {
		return fmt.Errorf("grapevine at %s is unhealthy: the proxy cannot accept connections since %s: %s", baseURL, p.FailingSince, p.AcceptError)
	}
	fmt.Fprintf(out, "grapevine is healthy at %s (database reachable: %t)\n", baseURL, status.Database.Reachable)
	if !status.Database.Reachable {
		return errors.New("the database is not reachable; the proxy serves its last configuration")
	}
	return nil
}

func runVersion(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("version", "version", out)
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	fmt.Fprintf(out, "grapevine %s (Kong Admin API %s compatible)\n", node.Version, node.KongVersion)
	return nil
}
