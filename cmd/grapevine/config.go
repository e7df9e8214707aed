package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/grapevine-gw/grapevine/entity/declarative"
	"github.com/grapevine-gw/grapevine/node"
	"github.com/grapevine-gw/grapevine/store"
)

// defaultDeclarativeFile is Kong's DEFAULT_FILE of `kong config`.
const defaultDeclarativeFile = "./kong.yml"

// runConfig is `grapevine config`, Kong's `kong config` (kong/cmd/config.lua):
// parse checks kong.conf (-c) or, given a file, a declarative
// configuration; db_import loads a declarative file into the database;
// db_export writes the database out as one.
func runConfig(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("config", "config parse [FILE] | db_import FILE | db_export [FILE] [-c kong.conf] [-p PREFIX]", out)
	confPath := confFlag(fs)
	fs.String("p", "", "prefix (accepted for Kong's CLI; Grapevine reads it from kong.conf)")
	fs.String("prefix", "", "same as -p")
	fs.Bool("v", false, "verbose (accepted for Kong's CLI)")
	fs.Bool("vv", false, "debug (accepted for Kong's CLI)")
	action, rest := splitAction(args)
	if err := parseFlags(fs, flagsFirst(rest), 1); err != nil {
		return err
	}
	file := fs.Arg(0)
	switch action {
	case "parse":
		if file != "" {
			return parseDeclarative(file, out)
		}
		return parseConf(*confPath, out)
	case "db_import", "db-import":
		if file == "" {
			return errors.New("expected a declarative configuration file; see 'grapevine config --help'")
		}
		return dbImport(ctx, *confPath, file, out)
	case "db_export", "db-export":
		if file == "" {
			file = defaultDeclarativeFile
		}
		return dbExport(ctx, *confPath, file, out)
	}
	fmt.Fprintf(out, "unknown or missing action %q\n", action)
	fs.Usage()
	return errUsage
}

// flagsFirst moves positional arguments after the flags, so that Go's
// flag package, which stops at the first positional one, reads
// "db_export kong.yml -c kong.conf" as Kong does.
func flagsFirst(args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			positional = append(positional, arg)
			continue
		}
		flags = append(flags, arg)
		if takesValue(arg) && i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(flags, positional...)
}

func parseConf(confPath string, out io.Writer) error {
	if confPath == "" {
		return errors.New("config parse needs a file: -c FILE, or a declarative configuration file")
	}
	if _, err := loadConfig(confPath); err != nil {
		return err
	}
	fmt.Fprintf(out, "configuration at %s is valid\n", confPath)
	return nil
}

// readDeclarative reads and parses a declarative file, refusing one too
// big before reading it.
func readDeclarative(path string) (*declarative.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading declarative configuration: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, declarative.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading declarative configuration: %w", err)
	}
	cfg, err := declarative.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("failed parsing %s:\n%w", path, err)
	}
	return cfg, nil
}

func parseDeclarative(path string, out io.Writer) error {
	cfg, err := readDeclarative(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "parse successful: %d entities\n", cfg.Count())
	return nil
}

// openStore opens the database kong.conf names.
func openStore(ctx context.Context, confPath string) (*store.Store, error) {
	cfg, err := loadConfig(confPath)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, node.StoreConfig(cfg, ""))
	if err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	if err := st.CheckSchema(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// dbImport loads a declarative file: every entity upserted in one
// transaction, and one cluster event that makes every node reload.
func dbImport(ctx context.Context, confPath, path string, out io.Writer) error {
	cfg, err := readDeclarative(path)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "parse successful, beginning import")
	st, err := openStore(ctx, confPath)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	rows, err := tableRows(cfg)
	if err != nil {
		return err
	}
	progress := newImportProgress(out)
	_, err = st.UpsertAllReporting(ctx, rows, progress.report)
	progress.done()
	if err != nil {
		return fmt.Errorf("failed importing (nothing was changed):\n%w", err)
	}
	fmt.Fprintf(out, "import successful: %d entities in %s\n", cfg.Count(), time.Since(start).Round(time.Millisecond))
	return nil
}

// tableRows is cfg as the store's rows, parents first.
func tableRows(cfg *declarative.Config) ([]store.TableRows, error) {
	out := make([]store.TableRows, 0, len(cfg.Kinds))
	for _, kd := range cfg.Kinds {
		rows, err := store.RowsOf(kd.Kind, kd.Docs)
		if err != nil {
			return nil, err
		}
		out = append(out, store.TableRows{Table: store.TableOf(kd.Kind), Rows: rows})
	}
	return out, nil
}

// dbExport writes the whole configuration, read in one snapshot, to path
// ("-" for standard output); like Kong it will not overwrite a file.
func dbExport(ctx context.Context, confPath, path string, out io.Writer) error {
	st, err := openStore(ctx, confPath)
	if err != nil {
		return err
	}
	defer st.Close()
	load, err := st.LoadConfig(ctx, store.Tables(), 0)
	if err != nil {
		return err
	}
	data, err := declarative.Export(store.ExportDocs(load.Rows))
	if err != nil {
		return err
	}
	if path == "-" {
		_, err := out.Write(data)
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s already exists; will not overwrite it", path)
	}
	if err != nil {
		return fmt.Errorf("writing export: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing export: %w", err)
	}
	return f.Close()
}
