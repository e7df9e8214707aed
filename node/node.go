// Package node owns one Grapevine node's life: it loads the configuration,
// opens the store, builds the proxy's snapshot from the database before the
// proxy port opens, joins the gossip cluster, applies committed changes
// (local writes, gossip hints, polled events), and shuts everything down in
// order. It holds no request-path, SQL or gossip-protocol logic of its own:
// those belong to proxy, store and gossip.
package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/admin"
	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/gossip"
	"github.com/grapevine-gw/grapevine/internal/listen"
	"github.com/grapevine-gw/grapevine/node/config"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/kongheaders"
	"github.com/grapevine-gw/grapevine/proxy/tlsconf"
	"github.com/grapevine-gw/grapevine/store"
)

// Version is Grapevine's own version.
const Version = "0.1.0"

// KongVersion is the Kong Gateway version whose Admin API Grapevine speaks;
// its one owner is the entity package.
const KongVersion = entity.KongVersion

// TestHooks change timings and inject faults for tests; the zero value is
// production behaviour.
type TestHooks struct {
	FastGossip        bool          // memberlist's local preset with short timers
	HeartbeatInterval time.Duration // registry heartbeat; default 10s
	DriftBound        time.Duration // anti-entropy bound; default 2×db_update_frequency+2s
	IgnoreHints       bool          // drop every gossip hint received (polling only)
	PollGapLimit      time.Duration // poll gap after which a poll reloads everything; default eventRetention/2
	// BeforeHintForTest runs after a local write committed and before its
	// hint is sent (e.g. to block there, as if the node died in between).
	BeforeHintForTest func(store.Change)
	// BeforeApplyForTest runs on the applier goroutine before it applies
	// a batch of changes (e.g. to make it panic).
	BeforeApplyForTest func()
}

// Node is one running gateway node.
type Node struct {
	cfg         config.Config
	log         zerolog.Logger
	hooks       TestHooks
	name        string // cluster-wide unique node name
	id          string // GET / node_id, derived from name
	clusterAddr string // advertised gossip address; "" when gossip is off

	store   *store.Store
	dbw     dbWatch // whether the database answers (dbwatch.go)
	proxy   *proxy.Server
	admin   *admin.Server
	gossip  *gossip.Cluster // nil when cluster_listen = off
	applier *applier
	drift   *driftWatch
	tagCh   chan applyStatus // newest status for the tag publisher; nil without gossip
	// cachedPeers are the gossip addresses the configuration cache named,
	// joined when the registry cannot be read.
	cachedPeers []string
	// cacheFiles writes the configuration cache (cachewrite.go).
	cacheFiles *cacheFiles
	// dbless is what a node without a database serves (dbless.go); nil
	// with one.
	dbless *dbless

	cancel context.CancelFunc // ends the background goroutines
	wg     sync.WaitGroup

	// sockets binds the proxy's and the Admin API's listeners, taking over
	// those of a node this one replaces in place; nil binds new ones.
	sockets *listen.Sockets
	// onServing runs once the proxy serves (see OnProxyServing).
	onServing func()

	shutdownOnce sync.Once
	shutdownErr  error
}

// New prepares a node; nothing is opened until Start.
func New(cfg config.Config, log zerolog.Logger) *Node {
	return &Node{cfg: cfg, log: log}
}

// SetTestHooks sets test-only behaviour; call before Start.
func (n *Node) SetTestHooks(h TestHooks) { n.hooks = h }

// SetSockets makes the node bind its listeners through s (and so take
// over sockets handed down to it); call before Start.
func (n *Node) SetSockets(s *listen.Sockets) { n.sockets = s }

// OnProxyServing sets fn to run once the proxy serves its first snapshot,
// before the node joins the cluster: a successor started in place tells
// its predecessor it can drain. Call before Start.
func (n *Node) OnProxyServing(fn func()) { n.onServing = fn }

// bind is the listeners' binder: through the node's sockets, if it has any.
func (n *Node) bind() func(context.Context, string) (net.Listener, error) {
	if n.sockets == nil {
		return nil
	}
	return n.sockets.Listen
}

// ID is the node's id as reported on GET / (node_id).
func (n *Node) ID() string { return n.id }

// Name is the node's name in the cluster.
func (n *Node) Name() string { return n.name }

// Start opens the store, builds the first snapshot, opens the proxy port,
// joins the cluster and opens the Admin API. On error everything already
// started is stopped again.
func (n *Node) Start(ctx context.Context) error {
	if err := n.start(ctx); err != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Shutdown(shutdownCtx)
		return err
	}
	return nil
}

func (n *Node) start(ctx context.Context) error {
	if err := n.resolveName(); err != nil {
		return err
	}
	if n.isDBLess() {
		return n.startDBLess(ctx)
	}
	st, err := store.Connect(StoreConfig(n.cfg, n.id))
	if err != nil {
		return fmt.Errorf("opening database: %w", err)
	}
	n.store = st
	proxyCfg, err := n.proxyConfig()
	if err != nil {
		return err
	}
	n.proxy = proxy.New(proxyCfg)
	n.applier = n.newApplier()
	fromCache, err := n.firstSnapshot(ctx)
	if err != nil {
		return err
	}
	if err := n.startProxy(ctx); err != nil {
		return err
	}
	if err := n.startGossip(); err != nil {
		return err
	}
	if fromCache {
		n.joinCachedPeers() // the registry is out of reach: do not wait for it
	} else if err := n.register(ctx); err != nil {
		return err
	}
	n.startBackground(fromCache)
	return n.startAdmin(ctx)
}

// resolveName picks the node's name: node_name, or the hostname and the
// advertised cluster address (unique per host and port, stable across
// restarts). The advertised address is resolved either way: the registry
// row carries it, and it is how the other nodes find this one.
func (n *Node) resolveName() error {
	if n.cfg.ClusterListen != "" {
		advertised, err := gossip.ResolveAdvertise(n.cfg.ClusterListen, n.cfg.ClusterAdvertise)
		if err != nil {
			return err
		}
		n.clusterAddr = advertised
	}
	n.name = n.cfg.NodeName
	if n.name == "" {
		hostname, _ := os.Hostname()
		addr := n.clusterAddr
		if addr == "" {
			addr = "nogossip-" + listen.AddrOf(firstListen(n.cfg.AdminListen, firstListen(n.cfg.ProxyListen, "")))
		}
		n.name = hostname + "-" + addr
	}
	n.id = uuid.NewSHA1(uuid.NameSpaceURL, []byte("grapevine-node:"+n.name)).String()
	return nil
}

func firstListen(list []string, fallback string) string {
	if len(list) == 0 {
		return fallback
	}
	return list[0]
}

func (n *Node) proxyConfig() (proxy.Config, error) {
	cfg := proxy.DefaultConfig()
	cfg.Listen = listen.Join(n.cfg.ProxyListen)
	policy, err := tlsconf.ParsePolicy(n.cfg.SSLCipherSuite, n.cfg.SSLCiphers, n.cfg.SSLProtocols)
	if err != nil {
		return cfg, fmt.Errorf("ssl_cipher_suite: %w", err)
	}
	cfg.TLS = policy
	if cfg.Certificates, err = tlsconf.LoadPairs(n.cfg.SSLCert, n.cfg.SSLCertKey); err != nil {
		return cfg, fmt.Errorf("ssl_cert: %w", err)
	}
	cfg.Version = Version
	cfg.LatencyHeaders = n.cfg.LatencyHeaders
	cfg.ErrorDefaultType = n.cfg.ErrorDefaultType
	cfg.DNSResolvers = n.cfg.DNSResolver
	order, err := proxy.ParseDNSOrder(strings.Join(n.cfg.DNSOrder, ","))
	if err != nil {
		return cfg, fmt.Errorf("dns_order: %w", err)
	}
	cfg.DNS = proxy.DNSConfig{Order: order, ValidTTL: n.cfg.DNSValidTTL, HostsFile: n.cfg.DNSHostsFile,
		StaleTTL: n.cfg.DNSStaleTTL, NotFoundTTL: n.cfg.DNSNotFoundTTL, ErrorTTL: n.cfg.DNSErrorTTL}
	cfg.LargeHeaderBuffers = int(n.cfg.LargeHeaderBuffers[0])
	cfg.LargeHeaderBufferSize = int(n.cfg.LargeHeaderBuffers[1])
	cfg.ClientHeaderTimeout = n.cfg.ClientHeaderTimeout
	cfg.ClientBodyTimeout = n.cfg.ClientBodyTimeout
	cfg.SendTimeout = n.cfg.SendTimeout
	cfg.MaxBodySize = n.cfg.ClientMaxBodySize
	if cfg.MaxBodySize == 0 {
		cfg.MaxBodySize = -1 // nginx's 0: no limit
	}
	cfg.BodyBufferSize = int(n.cfg.ClientBodyBuffer)
	// Validated with the rest of the configuration.
	cfg.Headers, _ = kongheaders.Parse(n.cfg.Headers, false)
	cfg.UpstreamHeaders, _ = kongheaders.Parse(n.cfg.HeadersUpstream, true)
	cfg.MaxConnections = n.connectionLimit()
	cfg.Logger = n.log // the proxy names itself in its log lines
	cfg.Bind = n.bind()
	return cfg, nil
}

// connectionLimit raises the descriptor limit (nginx_main_worker_rlimit_nofile)
// and returns the proxy's cap on client connections: nginx_events_worker_connections,
// or with "auto" half the descriptors, since each proxied request also
// holds an upstream connection and the node needs some for itself.
func (n *Node) connectionLimit() int {
	nofile, err := raiseNofile(n.cfg.RlimitNofile)
	if err != nil {
		n.log.Warn().Err(err).Msg("keeping the descriptor limit as it is")
	}
	limit := n.cfg.WorkerConnections
	if limit == 0 && nofile > 0 {
		limit = max(nofile/2, 16)
	}
	n.log.Info().Int("descriptor_limit", nofile).Int("proxy_connection_limit", limit).Msg("connection limits")
	return limit
}

func (n *Node) newApplier() *applier {
	a := &applier{
		store:        n.store,
		swap:         n.proxy.Swap,
		publish:      n.publishStatus,
		log:          n.log.With().Str("component", "applier").Logger(),
		pollEvery:    n.cfg.DBUpdateFrequency,
		settle:       n.cfg.DBUpdatePropagation,
		cacheTTL:     n.cfg.DBCacheTTL,
		dbTimeout:    n.dbTimeout(),
		beforeApply:  n.hooks.BeforeApplyForTest,
		pollGapLimit: n.pollGapLimit(),
		plugins:      n.pluginEnv(),
		tracker:      newEventTracker(gapTimeout),
		docs:         map[entityKey]json.RawMessage{},
		localCh:      make(chan applyRequest, 64),
		declareCh:    make(chan declareRequest),
		hintCh:       make(chan gossip.Hint, 4096),
		reloadCh:     make(chan string, 1),
		dbAnswered:   n.databaseAnswered,
	}
	a.state = a.newState()
	if n.cachePath() != "" && !n.isDBLess() {
		a.cacheCh = make(chan cacheContent, 1)
	}
	return a
}

// dbTimeout bounds each database call of the background work: pg_timeout,
// Kong's timeout for reading from and writing to the database.
func (n *Node) dbTimeout() time.Duration {
	if n.cfg.PgTimeout > 0 {
		return n.cfg.PgTimeout
	}
	return 5 * time.Second
}

// pollGapLimit is how long a node may go without a successful poll before
// it reloads everything: events are purged after eventRetention, so half
// of that leaves room for the slowest poll.
func (n *Node) pollGapLimit() time.Duration {
	if n.hooks.PollGapLimit > 0 {
		return n.hooks.PollGapLimit
	}
	return eventRetention / 2
}

func (n *Node) startProxy(ctx context.Context) error {
	if len(n.cfg.ProxyListen) == 0 {
		return nil
	}
	if err := n.proxy.Start(ctx); err != nil {
		return fmt.Errorf("starting proxy: %w", err)
	}
	if n.onServing != nil {
		n.onServing()
	}
	return nil
}

func (n *Node) startAdmin(ctx context.Context) error {
	if len(n.cfg.AdminListen) == 0 {
		return nil
	}
	adminTLS, err := n.adminTLS()
	if err != nil {
		return err
	}
	hostname, _ := os.Hostname()
	cfg := admin.Config{
		Listen:        listen.Join(n.cfg.AdminListen),
		TLS:           adminTLS,
		Version:       KongVersion,
		ServerVersion: Version,
		NodeID:        n.id,
		Hostname:      hostname,
		Configuration: n.cfg.Values(),
		ProxyListen:   listen.Join(n.cfg.ProxyListen),
		Cluster:       clusterView{n},
		Stats:         n.proxyStats,
		Logger:        n.log, // the Admin API names itself in its log lines
		MaxBodySize:   n.cfg.AdminMaxBodySize,
		Health:        nodeHealth{n},
		Bind:          n.bind(),
		Source:        n.configSource,
		Metrics:       n.writeMetrics,
		DBOutage:      n.dbw.outage,
	}
	if n.dbless != nil {
		cfg.DBLess = &admin.DBLess{Store: n.dbless.live, Config: declaredConfig{n}}
	}
	n.admin = admin.New(cfg, n.store, n)
	if err := n.admin.Start(ctx); err != nil {
		return fmt.Errorf("starting admin API: %w", err)
	}
	return nil
}

// adminTLS is the TLS of the Admin API's ssl listeners: admin_ssl_cert
// (or a certificate generated now, as Kong generates admin-kong-default.crt),
// the proxy's cipher policy, and with nginx_admin_ssl_verify_client a
// client certificate checked against nginx_admin_ssl_client_certificate
// ("on" requires one, "optional" checks one when sent). nil when no
// admin listener is flagged ssl.
func (n *Node) adminTLS() (*tls.Config, error) {
	ssl := false
	for _, entry := range n.cfg.AdminListen {
		ls, _ := listen.Parse(entry)
		ssl = ssl || len(ls) == 1 && ls[0].Has("ssl")
	}
	if !ssl {
		return nil, nil
	}
	certs, err := tlsconf.LoadPairs(n.cfg.AdminSSLCert, n.cfg.AdminSSLCertKey)
	if err != nil {
		return nil, fmt.Errorf("admin_ssl_cert: %w", err)
	}
	defaults := tlsconf.NewDefaults(certs)
	if len(certs) == 0 {
		if defaults, err = tlsconf.GeneratedDefaults(); err != nil {
			return nil, fmt.Errorf("admin_listen: %w", err)
		}
		n.log.Info().Msg("admin_ssl_cert is not set; the Admin API serves generated self-signed certificates")
	}
	policy, err := tlsconf.ParsePolicy(n.cfg.SSLCipherSuite, n.cfg.SSLCiphers, n.cfg.SSLProtocols)
	if err != nil {
		return nil, fmt.Errorf("ssl_cipher_suite: %w", err)
	}
	c := &tls.Config{GetCertificate: defaults.Pick}
	policy.Apply(c)
	if n.cfg.AdminSSLVerifyClient != "off" && n.cfg.AdminSSLVerifyClient != "" {
		if c.ClientCAs, err = tlsconf.LoadCAPool(n.cfg.AdminSSLClientCA); err != nil {
			return nil, fmt.Errorf("nginx_admin_ssl_client_certificate: %w", err)
		}
		c.ClientAuth = tls.RequireAndVerifyClientCert
		if n.cfg.AdminSSLVerifyClient == "optional" {
			c.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return c, nil
}

// startBackground starts the applier and the cluster housekeeping loops;
// fromCache adds the loop that waits for the database to answer.
func (n *Node) startBackground(fromCache bool) {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.drift = newDriftWatch(n.driftBound())
	n.goSafe(ctx, "applier", n.applier.run, n.applier.afterPanic)
	if n.dbless != nil {
		n.startDBLessBackground(ctx)
		return
	}
	n.goSafe(ctx, "registry", n.heartbeatLoop, nil)
	n.goSafe(ctx, "database watch", n.dbWatchLoop, nil)
	n.goSafe(ctx, "import listener", n.importListener, nil)
	if n.applier.cacheCh != nil {
		n.goSafe(ctx, "configuration cache", n.cacheWriter, nil)
	}
	if fromCache {
		n.goSafe(ctx, "database reconnect", n.reconnectLoop, nil)
	}
	if n.gossip != nil {
		n.goSafe(ctx, "anti-entropy", n.antiEntropyLoop, nil)
		n.goSafe(ctx, "tag publisher", n.tagPublisher, nil)
	}
}

// Pauses before a background loop that panicked starts again: short for
// a one-off, growing while it keeps panicking, so a panic that repeats on
// every run is logged loudly without spinning.
const (
	firstRestartPause = 100 * time.Millisecond
	maxRestartPause   = 10 * time.Second
)

// goSafe runs fn in a goroutine that Shutdown waits for. A panic is
// logged with its stack and fn starts again after a pause, so one bad
// event cannot end a loop the node depends on (the applier above all)
// while /status says all is well. afterPanic, if set, runs on the same
// goroutine first, to put fn's state right for the new run.
func (n *Node) goSafe(ctx context.Context, name string, fn func(context.Context), afterPanic func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		pause := firstRestartPause
		for {
			started := time.Now()
			if !n.runRecovered(ctx, name, fn) || ctx.Err() != nil {
				return
			}
			if afterPanic != nil {
				afterPanic()
			}
			if time.Since(started) > maxRestartPause {
				pause = firstRestartPause // it ran well for a while: a new, one-off panic
			}
			n.log.Error().Str("goroutine", name).Dur("pause", pause).Msg("restarting the background goroutine after its panic")
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, maxRestartPause)
		}
	}()
}

// runRecovered runs fn and reports whether it panicked, logging the panic
// with the stack of the goroutine where it happened.
func (n *Node) runRecovered(ctx context.Context, name string, fn func(context.Context)) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			n.log.Error().Str("panic", fmt.Sprint(r)).Str("goroutine", name).Str("stack", string(debug.Stack())).
				Msg("background goroutine panicked")
		}
	}()
	fn(ctx)
	return false
}

// Apply makes a committed local write live: it hints the cluster first,
// then waits until this node's proxy serves the change, so the writer's
// next request already sees it.
func (n *Node) Apply(ctx context.Context, change store.Change) error {
	n.broadcast(change)
	done := make(chan error, 1)
	select {
	case n.applier.localCh <- applyRequest{change: change, done: done}:
	case <-ctx.Done():
		return fmt.Errorf("applying %s %s: %w", change.Table, change.ID, ctx.Err())
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("applying %s %s: %w", change.Table, change.ID, ctx.Err())
	}
}

// proxyStats maps the proxy's counters onto Kong's /status "server" block.
func (n *Node) proxyStats() admin.ServerStats {
	st := n.proxy.Stats()
	stats := admin.ServerStats{
		ConnectionsAccepted: st.ConnectionsAccepted,
		ConnectionsHandled:  st.ConnectionsAccepted,
		ConnectionsActive:   st.ConnectionsActive,
		TotalRequests:       st.TotalRequests,
	}
	if st.AcceptError != nil {
		stats.ProxyAcceptError = st.AcceptError.Error()
		stats.ProxyAcceptFailingSince = st.AcceptFailingSince
	}
	return stats
}

// ProxyAddr is the proxy's bound address, nil when the proxy is off.
func (n *Node) ProxyAddr() net.Addr {
	if n.proxy == nil || len(n.cfg.ProxyListen) == 0 {
		return nil
	}
	return n.proxy.Addr()
}

// AdminAddr is the Admin API's bound address, nil when it is off.
func (n *Node) AdminAddr() net.Addr {
	if n.admin == nil {
		return nil
	}
	return n.admin.Addr()
}

// configSource tells GET /status where the configuration served comes from.
func (n *Node) configSource() admin.ConfigSource {
	s := n.applier.status.Load()
	if s == nil {
		return admin.ConfigSource{}
	}
	return admin.ConfigSource{FromCache: s.FromCache, Hash: s.Hash, CachedAt: s.CachedAt}
}

// ConfigHash is the hash of the configuration this node serves.
func (n *Node) ConfigHash() string {
	if n.applier == nil {
		return ""
	}
	if s := n.applier.status.Load(); s != nil {
		return s.Hash
	}
	return ""
}

// Shutdown stops the Admin API and the background goroutines, leaves the
// cluster, drains the proxy (serving its last snapshot meanwhile) and
// closes the store. Safe to repeat.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() {
		var errs []error
		if n.admin != nil {
			errs = append(errs, n.admin.Shutdown(ctx))
		}
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		n.flushCache()
		errs = append(errs, n.leave(ctx))
		// Gossip stops before the proxy drains: the node has left, and a
		// successor started in place waits for the cluster port.
		if n.gossip != nil {
			errs = append(errs, n.gossip.Shutdown())
		}
		if n.proxy != nil && len(n.cfg.ProxyListen) > 0 {
			errs = append(errs, n.proxy.Shutdown(ctx))
		}
		if n.store != nil {
			n.store.Close()
		}
		if n.applier != nil && n.applier.plugins != nil {
			n.applier.plugins.Close() // the plugins' Redis connections
		}
		n.shutdownErr = errors.Join(errs...)
	})
	return n.shutdownErr
}

// StoreConfig maps the pg_* keys onto the store's configuration.
func StoreConfig(cfg config.Config, nodeID string) store.Config {
	return store.Config{
		Host:           cfg.PgHost,
		Port:           cfg.PgPort,
		User:           cfg.PgUser,
		Password:       cfg.PgPassword,
		Database:       cfg.PgDatabase,
		NodeID:         nodeID,
		MaxConns:       int32(cfg.PgMaxConns),
		ConnectTimeout: cfg.PgTimeout,
	}
}
