package node

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grapevine-gw/grapevine/admin"
	"github.com/grapevine-gw/grapevine/entity/declarative"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/store"
	"github.com/grapevine-gw/grapevine/store/memstore"
)

// A DB-less node (Kong's database = off) serves a declarative
// configuration with no PostgreSQL at all: declarative_config_string, or
// the file declarative_config names, or nothing. Its configuration
// changes only whole: POST /config on its Admin API, or SIGHUP, which
// reads the file again. The applier builds the proxy's snapshot from the
// document's rows as it would from the database's, and the Admin API
// reads entities from the same rows (store/memstore). It joins gossip for
// membership only: every DB-less node serves its own document, so hints,
// polling, the registry and anti-entropy are off.

// dbless holds what a DB-less node serves besides the applier's state.
type dbless struct {
	live *memstore.Live
	hash atomic.Pointer[string] // md5 of the document served, Kong's configuration_hash
	// mu makes replacements one at a time, so the Admin API's rows and
	// the proxy's snapshot always come from the same document.
	mu sync.Mutex
}

// declareRequest asks the applier to serve a whole new configuration.
type declareRequest struct {
	rows map[string][]store.Row
	done chan error
}

// isDBLess says whether the node runs without a database.
func (n *Node) isDBLess() bool { return n.cfg.Database == "off" }

// startDBLess is Start without a database: the document is read and
// checked before anything opens, as Kong refuses to start on a bad file.
func (n *Node) startDBLess(ctx context.Context) error {
	cfg, hash, err := n.readDeclarative()
	if err != nil {
		return err
	}
	proxyCfg, err := n.proxyConfig()
	if err != nil {
		return err
	}
	n.proxy = proxy.New(proxyCfg)
	n.applier = n.newApplier()
	n.dbless = &dbless{live: memstore.NewLive(nil)}
	if err := n.serveDeclared(cfg, hash, n.applier.loadDeclared); err != nil {
		return err
	}
	if err := n.startProxy(ctx); err != nil {
		return err
	}
	if err := n.startGossip(); err != nil {
		return err
	}
	n.joinPeers(ctx)
	n.startBackground(false)
	return n.startAdmin(ctx)
}

// readDeclarative reads the configuration a DB-less node serves:
// declarative_config_string, else declarative_config's file; with neither
// an empty configuration. hash is Kong's md5 of the text ("" for none).
func (n *Node) readDeclarative() (*declarative.Config, string, error) {
	data := []byte(n.cfg.DeclarativeConfigString)
	source := "declarative_config_string"
	if len(data) == 0 && n.cfg.DeclarativeConfig != "" {
		source = n.cfg.DeclarativeConfig
		f, err := os.Open(n.cfg.DeclarativeConfig)
		if err != nil {
			return nil, "", fmt.Errorf("declarative_config: %w", err)
		}
		defer f.Close()
		if data, err = io.ReadAll(io.LimitReader(f, declarative.MaxSize+1)); err != nil {
			return nil, "", fmt.Errorf("declarative_config: %w", err)
		}
	}
	if len(data) == 0 {
		return &declarative.Config{}, "", nil
	}
	cfg, err := declarative.Parse(data)
	if err != nil {
		return nil, "", fmt.Errorf("declarative configuration %s: %w", source, err)
	}
	sum := md5.Sum(data)
	return cfg, hex.EncodeToString(sum[:]), nil
}

// serveDeclared makes cfg the configuration served through load (the
// applier's loadDeclared before it runs, or a request to it after), then
// the one the Admin API reads.
func (n *Node) serveDeclared(cfg *declarative.Config, hash string, load func(map[string][]store.Row) error) error {
	rows, err := memstore.Rows(cfg)
	if err != nil {
		return fmt.Errorf("declarative configuration: %w", err)
	}
	set := memstore.New(rows)
	n.dbless.mu.Lock()
	defer n.dbless.mu.Unlock()
	if err := load(set.Rows()); err != nil {
		return err
	}
	n.dbless.live.Store(set)
	n.dbless.hash.Store(&hash)
	n.log.Info().Int("entities", cfg.Count()).Str("hash", hash).Msg("serving the declarative configuration")
	return nil
}

// declaredConfig is the Admin API's view of a DB-less node's whole
// configuration (admin.Declarative).
type declaredConfig struct{ n *Node }

var _ admin.Declarative = declaredConfig{}

// Replace serves cfg once the proxy does (POST /config).
func (d declaredConfig) Replace(ctx context.Context, cfg *declarative.Config, hash string) error {
	return d.n.serveDeclared(cfg, hash, func(rows map[string][]store.Row) error {
		return d.n.applier.declare(ctx, rows)
	})
}

// Hash is the md5 of the document served.
func (d declaredConfig) Hash() string {
	if h := d.n.dbless.hash.Load(); h != nil {
		return *h
	}
	return ""
}

// Reload reads the configuration again: on a DB-less node the declarative
// document (SIGHUP, as Kong re-reads declarative_config on reload), with a
// database everything from it.
func (n *Node) Reload(ctx context.Context) error {
	if n.applier == nil {
		return errors.New("the node is not running")
	}
	if !n.isDBLess() {
		select {
		case n.applier.reloadCh <- "reload asked (SIGHUP)":
		default: // a reload is queued already
		}
		return nil
	}
	cfg, hash, err := n.readDeclarative()
	if err != nil {
		n.log.Error().Err(err).Msg("the declarative configuration was not reloaded; serving the last one")
		return err
	}
	return declaredConfig{n}.Replace(ctx, cfg, hash)
}

// loadDeclared replaces the applier's whole state with a document's rows
// and serves it; rows are kept for a reload after a panic.
func (a *applier) loadDeclared(rows map[string][]store.Row) error {
	own := make(map[string][]store.Row, len(rows))
	for table, list := range rows {
		own[table] = list // replaceRows takes the index tables out of the map
	}
	if err := a.replaceRows(own); err != nil {
		return fmt.Errorf("declarative configuration: %w", err)
	}
	a.declared = rows
	a.rebuild()
	return nil
}

// declare hands the applier goroutine a whole configuration and waits
// until the proxy serves it.
func (a *applier) declare(ctx context.Context, rows map[string][]store.Row) error {
	req := declareRequest{rows: rows, done: make(chan error, 1)}
	select {
	case a.declareCh <- req:
	case <-ctx.Done():
		return fmt.Errorf("replacing the configuration: %w", ctx.Err())
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("replacing the configuration: %w", ctx.Err())
	}
}

// startDBLessBackground starts what a DB-less node runs besides the
// applier: the tag publisher, and with gossip a loop that joins
// cluster_join again while the node is alone (a peer started later, or
// back after a partition), the registry heartbeat's job with a database.
func (n *Node) startDBLessBackground(ctx context.Context) {
	if n.gossip == nil {
		return
	}
	n.goSafe(ctx, "tag publisher", n.tagPublisher, nil)
	if len(n.cfg.ClusterJoin) > 0 {
		n.goSafe(ctx, "rejoin", n.rejoinLoop, nil)
	}
}

func (n *Node) rejoinLoop(ctx context.Context) {
	every(ctx, n.heartbeatInterval(), func(time.Time) {
		if n.aliveMembers() <= 1 {
			n.joinPeers(ctx)
		}
	})
}
