// Package main is the grapevine command: it parses flags and calls into the
// node, store and config packages. It holds no gateway logic of its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one subcommand of the grapevine binary.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, out io.Writer) error
}

var commands = map[string]command{
	"start":      {"start a node in the foreground (SIGTERM/SIGINT drain and stop it)", runStart},
	"migrations": {"bootstrap|up|status|reset the database schema", runMigrations},
	"config":     {"parse, db_import, db_export: check kong.conf or a declarative file, import or export the configuration", runConfig},
	"health":     {"check that the local node answers on its Admin API", runHealth},
	"cluster":    {"members|force-leave|reachability|keys: see and manage the cluster", runCluster},
	"version":    {"print the version", runVersion},
}

// errUsage marks an error whose message is a usage text, already printed.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "grapevine: unknown command %q\n\n", args[0])
		printUsage(stderr)
		return 2
	}
	err := cmd.run(ctx, args[1:], stdout)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: grapevine COMMAND [OPTIONS]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-11s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'grapevine COMMAND --help' for a command's options.")
}

// newFlags makes a flag set that prints its usage to out and reports
// errors instead of exiting.
func newFlags(name, usage string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: grapevine %s\n\nOptions:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and rejects stray positional arguments beyond max.
func parseFlags(fs *flag.FlagSet, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > maxArgs {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args()[maxArgs:], " "))
		fs.Usage()
		return errUsage
	}
	return nil
}
