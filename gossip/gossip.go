// Package gossip owns the cluster layer: serf/memberlist membership on
// cluster_listen, the node tags every member publishes (config hash,
// addresses), the encryption keyring, and invalidation hints broadcast as
// serf user events. Hints only name what changed; gossip never carries
// configuration, and this package never reads the database.
package gossip

import (
	"errors"
	"fmt"
	"log"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/rs/zerolog"
)

// hintEventName is the serf user event name that carries invalidation hints.
const hintEventName = "gv-inv"

// Config says how a node joins the cluster. Fields are set once, before Start.
type Config struct {
	// NodeName is the member's unique, stable name. Required.
	NodeName string
	// BindAddr is cluster_listen, host:port (default "0.0.0.0:7946"). TCP and UDP.
	BindAddr string
	// AdvertiseAddr is cluster_advertise, host:port the others use to reach
	// this node. If empty: the bind address when it is specific, else the
	// host's first non-loopback address with the bind port.
	AdvertiseAddr string
	// EncryptKey is cluster_encrypt_key decoded (16, 24 or 32 bytes); nil = no encryption.
	EncryptKey []byte
	// KeyringFile, if set, persists the keyring so installed keys survive restarts.
	KeyringFile string
	// Tags are published to every member (serf tags).
	Tags map[string]string
	// FastTimers uses memberlist's local-network preset with short intervals
	// (tests); otherwise the LAN preset with a short gossip interval.
	FastTimers bool
	// GossipInterval overrides how often queued broadcasts are gossiped
	// (default 20ms: idle ticks send nothing, so short is cheap).
	GossipInterval time.Duration
	// ProbeInterval overrides memberlist's failure-detection probe period
	// (default 500ms, see tuneFailureDetection). Probes also carry queued
	// broadcasts.
	ProbeInterval time.Duration
	// ReconnectTimeout is how long a failed member is kept before it is
	// reaped (cluster_ttl_on_failure; default 1h).
	ReconnectTimeout time.Duration
	// GossipOnlyForTest turns off the direct send of hints.
	GossipOnlyForTest bool
	// OnHint is called for every hint received, including this node's own.
	OnHint func(Hint)
	// OnHealth is called for every health event received (health.go),
	// including this node's own.
	OnHealth func(HealthEvent)
	// Status, if set, returns this node's live status (e.g. the config hash
	// it serves now), the answer to other members' status queries
	// (LiveMembers). It is called on the event goroutine: it must be quick.
	Status func() map[string]string
	// OnMembers is called after any membership or tag change.
	OnMembers func()
	Logger    zerolog.Logger

	logWriter *zerologWriter // serf's and memberlist's logs; set by Start
}

// Cluster is this node's membership in the gossip cluster.
type Cluster struct {
	cfg     Config
	serf    *serf.Serf
	eventCh chan serf.Event
	log     zerolog.Logger

	// broadcastMu keeps the event clock read and the UserEvent call that
	// stamps that time together, so direct and gossiped copies match.
	broadcastMu sync.Mutex

	// tagsMu guards tags, the full tag set last published.
	tagsMu sync.Mutex
	tags   map[string]string

	done         chan struct{}
	wg           sync.WaitGroup
	shutdownOnce sync.Once
	shutdownErr  error
}

// Start binds cluster_listen and starts gossiping. It joins no one: call Join.
func Start(cfg Config) (*Cluster, error) {
	cfg.logWriter = newZerologWriter(cfg.Logger)
	serfConfig, err := buildSerfConfig(&cfg)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg:     cfg,
		eventCh: make(chan serf.Event, 1024),
		log:     cfg.Logger,
		tags:    copyTags(cfg.Tags),
		done:    make(chan struct{}),
	}
	serfConfig.EventCh = c.eventCh
	transport, err := bindTransport(serfConfig.MemberlistConfig)
	if err != nil {
		return nil, bindError(cfg.BindAddr, err)
	}
	s, err := serf.Create(serfConfig)
	if err != nil {
		_ = transport.Shutdown()
		return nil, bindError(cfg.BindAddr, err)
	}
	c.serf = s
	c.wg.Add(1)
	go c.dispatchEvents()
	return c, nil
}

// bindTransport binds memberlist's sockets on ml's bind address (see
// boundTransport for why not memberlist's own transport) and sets it in ml.
func bindTransport(ml *memberlist.Config) (*boundTransport, error) {
	t, err := newBoundTransport(ml.BindAddr, ml.BindPort, ml.Logger)
	if err != nil {
		return nil, err
	}
	if ml.BindPort == 0 {
		ml.BindPort = t.Port()
		if ml.AdvertisePort == 0 {
			ml.AdvertisePort = t.Port()
		}
	}
	ml.Transport = t
	return t, nil
}

func buildSerfConfig(cfg *Config) (*serf.Config, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("gossip: node name is required")
	}
	bindHost, bindPort, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster_listen: %w", err)
	}
	advHost, advPort, err := advertiseAddr(cfg.AdvertiseAddr, bindHost, bindPort)
	if err != nil {
		return nil, err
	}
	cfg.AdvertiseAddr = net.JoinHostPort(advHost, strconv.Itoa(advPort))

	ml := memberlist.DefaultLANConfig()
	tuneFailureDetection(ml)
	if cfg.FastTimers {
		ml = memberlist.DefaultLocalConfig()
		ml.ProbeInterval = 200 * time.Millisecond
		ml.ProbeTimeout = 100 * time.Millisecond
		ml.SuspicionMult = 2
		ml.PushPullInterval = 2 * time.Second
	}
	ml.GossipInterval = 20 * time.Millisecond
	if cfg.GossipInterval > 0 {
		ml.GossipInterval = cfg.GossipInterval
	}
	if cfg.ProbeInterval > 0 {
		ml.ProbeInterval = cfg.ProbeInterval
	}
	ml.BindAddr, ml.BindPort = bindHost, bindPort
	ml.AdvertiseAddr, ml.AdvertisePort = advHost, advPort
	logWriter := cfg.logWriter
	ml.Logger = log.New(logWriter, "", 0)
	if len(cfg.EncryptKey) > 0 {
		keyring, err := memberlist.NewKeyring(nil, cfg.EncryptKey)
		if err != nil {
			return nil, fmt.Errorf("cluster_encrypt_key: %w", err)
		}
		ml.Keyring = keyring
		ml.GossipVerifyIncoming, ml.GossipVerifyOutgoing = true, true
	}

	sc := serf.DefaultConfig()
	sc.QueryTimeoutMult = queryTimeoutMult(sc.QueryTimeoutMult, ml.GossipInterval)
	sc.NodeName = cfg.NodeName
	sc.Tags = copyTags(cfg.Tags)
	sc.MemberlistConfig = ml
	sc.Logger = log.New(logWriter, "", 0)
	sc.KeyringFile = cfg.KeyringFile
	sc.EnableNameConflictResolution = true
	sc.ReconnectTimeout = 24 * time.Hour
	sc.TombstoneTimeout = 24 * time.Hour
	if cfg.ReconnectTimeout > 0 {
		sc.ReconnectTimeout = cfg.ReconnectTimeout
	}
	if cfg.FastTimers {
		sc.ReapInterval = time.Second
		sc.LeavePropagateDelay = 100 * time.Millisecond
	}
	tuneHealing(sc)
	return sc, nil
}

// Partition healing (README "Partitions"). Once a partition has made
// members list each other as failed, memberlist no longer gossips or
// syncs with them; only serf's reconnect loop, which tries a join to one
// failed member each interval, brings them back. serf's 30 s interval
// left a healed partition split for up to half a minute; every 500 ms
// it heals within about a second. The cost stays small: the side that
// sees most members failed tries every tick, the others with a
// probability of failed/alive, so the whole cluster makes about one join
// attempt per failed member per interval, a TCP connect that a dead host
// answers with a reset. A join's dial to a member still cut off blocks
// the loop until memberlist's stream timeout, and the kernel retries a
// lost SYN only after 1 s and then 3 s: the LAN preset's 10 s timeout
// could keep a dial started during the cut waiting for 6 s after it
// healed. 2 s covers a push/pull of a few hundred members on a LAN and
// ends such a dial at most 1 s after the cut heals.
const (
	reconnectInterval = 500 * time.Millisecond
	streamTimeout     = 2 * time.Second
)

func tuneHealing(sc *serf.Config) {
	sc.ReconnectInterval = reconnectInterval
	if sc.MemberlistConfig.TCPTimeout > streamTimeout {
		sc.MemberlistConfig.TCPTimeout = streamTimeout
	}
}

// Failure detection timers (README "Failure detection"). memberlist's LAN
// preset probes every 1 s and suspects for 4 probe intervals, so a killed
// node was listed failed after about 6 s. Probing twice as often and
// suspecting for 5 shorter intervals lists it failed after about 3 s,
// while a node that is only slow still has 2.5 s (scaled up with
// log10 of the cluster size, and up to 6 times that until others confirm
// the suspicion in clusters of 5 or more) to refute: it does so as soon as
// it runs again and reads the suspicion, so only a node that cannot run at
// all for that long is declared failed. A prober that is itself
// overloaded stretches its own probe interval and timeout (memberlist's
// awareness, up to 8 times) rather than accuse others.
const (
	probeInterval = 500 * time.Millisecond
	probeTimeout  = 250 * time.Millisecond // an ack on a LAN takes well under 1 ms
	suspicionMult = 5
)

func tuneFailureDetection(ml *memberlist.Config) {
	ml.ProbeInterval = probeInterval
	ml.ProbeTimeout = probeTimeout
	ml.SuspicionMult = suspicionMult
}

// queryTimeoutMult scales serf's query timeout multiplier to our gossip
// interval. Serf times a query out after GossipInterval × QueryTimeoutMult
// × ⌈log10(N+1)⌉, tuned for memberlist's LAN interval of 200 ms; with the
// 20 ms interval hints need, that was 320 ms, and key rotation and
// reachability queries timed out on a busy host. Scaling keeps serf's
// designed timeout (3.2 s below ten nodes); queries still end as soon as
// every member answered.
func queryTimeoutMult(serfDefault int, gossipInterval time.Duration) int {
	lan := memberlist.DefaultLANConfig().GossipInterval
	if gossipInterval <= 0 || gossipInterval >= lan {
		return serfDefault
	}
	return int((time.Duration(serfDefault)*lan + gossipInterval - 1) / gossipInterval)
}

// bindError turns memberlist's bind failure into a message that names the key.
func bindError(bind string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("cluster_listen %s cannot be bound (is another grapevine or Docker Swarm using it?): %w", bind, err)
	}
	return fmt.Errorf("starting gossip on cluster_listen %s: %w", bind, err)
}

// Join contacts the given cluster addresses (host:port) and returns how
// many answered. Failing to reach anyone is not fatal for a node: it stays
// a cluster of one until someone joins it.
func (c *Cluster) Join(addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	n, err := c.serf.Join(addrs, true)
	if err != nil && n == 0 {
		return 0, fmt.Errorf("joining %v: %w", addrs, err)
	}
	return n, nil
}

// Broadcast sends a hint to every member: straight to each alive one,
// and over gossip for any the direct send misses.
func (c *Cluster) Broadcast(h Hint) error {
	if err := c.broadcastEvent(hintEventName, h.encode()); err != nil {
		return fmt.Errorf("broadcasting hint %d: %w", h.EventID, err)
	}
	return nil
}

// broadcastEvent sends a user event over gossip and straight to every
// alive member.
func (c *Cluster) broadcastEvent(name string, payload []byte) error {
	c.broadcastMu.Lock()
	defer c.broadcastMu.Unlock()
	ltime, ok := c.eventTime()
	if err := c.serf.UserEvent(name, payload, false); err != nil {
		return err
	}
	if !ok || c.cfg.GossipOnlyForTest {
		return nil
	}
	raw, err := encodeUserEvent(ltime, name, payload)
	if err != nil {
		return err
	}
	c.sendDirect(raw)
	return nil
}

// SetTags merges tags into this node's published tags.
func (c *Cluster) SetTags(tags map[string]string) error {
	c.tagsMu.Lock()
	defer c.tagsMu.Unlock()
	changed := false
	for k, v := range tags {
		if c.tags[k] != v {
			c.tags[k] = v
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := c.serf.SetTags(copyTags(c.tags)); err != nil {
		return fmt.Errorf("publishing tags: %w", err)
	}
	return nil
}

// Name is this member's node name.
func (c *Cluster) Name() string { return c.cfg.NodeName }

// AdvertiseAddr is the host:port other members use to reach this node.
func (c *Cluster) AdvertiseAddr() string { return c.cfg.AdvertiseAddr }

// ForceLeave marks a failed member as left and removes it from the member
// list of every node at once, instead of waiting for it to be reaped.
func (c *Cluster) ForceLeave(name string) error {
	if err := c.serf.RemoveFailedNodePrune(name); err != nil {
		return fmt.Errorf("force-leave %s: %w", name, err)
	}
	return nil
}

// Leave tells the cluster this node is going away on purpose. Safe to repeat.
func (c *Cluster) Leave() error {
	if c.serf.State() != serf.SerfAlive {
		return nil
	}
	if err := c.serf.Leave(); err != nil {
		return fmt.Errorf("leaving cluster: %w", err)
	}
	return nil
}

// Shutdown stops gossip without telling anyone (Leave first for a clean
// exit) and waits for the event goroutine. Safe to repeat.
func (c *Cluster) Shutdown() error {
	c.shutdownOnce.Do(func() {
		c.shutdownErr = c.serf.Shutdown()
		c.cfg.logWriter.close()
		close(c.done)
		c.wg.Wait()
	})
	return c.shutdownErr
}

// dispatchEvents hands serf's events to the configured callbacks until shutdown.
func (c *Cluster) dispatchEvents() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case ev := <-c.eventCh:
			c.handleEvent(ev)
		}
	}
}

func (c *Cluster) handleEvent(ev serf.Event) {
	defer func() {
		if r := recover(); r != nil {
			logPanic(c.log, r, "gossip event handler")
		}
	}()
	switch e := ev.(type) {
	case serf.UserEvent:
		c.handleUserEvent(e)
	case serf.MemberEvent:
		c.logMemberEvent(e)
		if c.cfg.OnMembers != nil {
			c.cfg.OnMembers()
		}
	case *serf.Query:
		c.answerQuery(e)
	}
}

// logMemberEvent says when a member failed (an operator may have to act:
// a crashed or unreachable node) at warn, joins and leaves at info.
func (c *Cluster) logMemberEvent(e serf.MemberEvent) {
	level, msg := zerolog.InfoLevel, "member "+e.EventType().String()
	switch e.EventType() {
	case serf.EventMemberFailed:
		level, msg = zerolog.WarnLevel, "member failed: it stopped answering probes"
	case serf.EventMemberJoin:
		msg = "member joined"
	case serf.EventMemberLeave:
		msg = "member left"
	case serf.EventMemberUpdate, serf.EventMemberReap:
		level = zerolog.DebugLevel
	}
	for _, m := range e.Members {
		c.log.WithLevel(level).Str("member", m.Name).Str("cluster_address", joinHostPort(m.Addr.String(), m.Port)).Msg(msg)
	}
}

func (c *Cluster) handleUserEvent(e serf.UserEvent) {
	if e.Name == healthEventName && c.cfg.OnHealth != nil {
		h, err := decodeHealthEvent(e.Payload)
		if err != nil {
			c.log.Warn().Err(err).Msg("ignoring malformed health event")
			return
		}
		c.cfg.OnHealth(h)
		return
	}
	if e.Name != hintEventName || c.cfg.OnHint == nil {
		return
	}
	h, err := decodeHint(e.Payload)
	if err != nil {
		c.log.Warn().Err(err).Msg("ignoring malformed hint")
		return
	}
	c.cfg.OnHint(h)
}

func copyTags(tags map[string]string) map[string]string {
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		out[k] = v
	}
	return out
}
