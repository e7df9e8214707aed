package node

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Partition tests (issue 19, "Partitions"): nftables drops packets
// between real nodes on loopback addresses of their own, in a table the
// test adds and removes. They need root and nft, and skip without them.
// Each test has its own /24 (127.0.72–74.x), apart from newHost's range.

// needNft skips the test unless nftables can be changed here.
func needNft(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("partition tests change nftables rules and need root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("partition tests need nft (scripts/test installs nftables)")
	}
}

// dropPackets adds one nftables table that drops (not rejects) every
// packet matching one of matches where it arrives (the input hook; on
// loopback every packet passes it once). Dropped on output instead, the
// sender's own call would fail at once (EPERM), which a lost packet on a
// network never does. The returned function lets the packets through
// again; it runs at the end of the test too, and is safe to repeat.
func dropPackets(t *testing.T, matches ...string) (restore func()) {
	t.Helper()
	needNft(t)
	return nftDrop(t, "input", matches...)
}

// nftDrop adds one nftables table whose chain on hook (input or output)
// drops every packet matching one of matches, and returns the function
// that removes it (run at the end of the test too; safe to repeat).
func nftDrop(t *testing.T, hook string, matches ...string) (restore func()) {
	t.Helper()
	removeStaleNftTables(t)
	table := fmt.Sprintf("grapevine_test_%d_%d", os.Getpid(), nextHost.Add(1))
	rules := []string{
		"add table inet " + table,
		"add chain inet " + table + " " + hook + " { type filter hook " + hook + " priority 0 ; }",
	}
	for _, m := range matches {
		rules = append(rules, "add rule inet "+table+" "+hook+" "+m+" drop")
	}
	for _, rule := range rules {
		if out, err := exec.Command("nft", strings.Fields(rule)...).CombinedOutput(); err != nil {
			t.Fatalf("nft %s: %v: %s (scripts/test installs nftables; tests run as root)", rule, err, out)
		}
	}
	var once sync.Once
	restore = func() {
		once.Do(func() {
			if out, err := exec.Command("nft", "delete", "table", "inet", table).CombinedOutput(); err != nil {
				t.Errorf("removing nft table %s: %v: %s", table, err, out)
			}
		})
	}
	t.Cleanup(restore)
	return restore
}

// cutBetween drops gossip (TCP and UDP on the gossip port) both ways
// between the host of one and the hosts of the others, and nothing else:
// the others still gossip among themselves, and every node still reaches
// the database and the upstream.
func cutBetween(t *testing.T, one *Node, others ...*Node) (restore func()) {
	t.Helper()
	host, port := splitAddr(t, one.cfg.ClusterListen)
	var matches []string
	for _, o := range others {
		otherHost, _ := splitAddr(t, o.cfg.ClusterListen)
		for _, proto := range []string{"tcp", "udp"} {
			matches = append(matches,
				fmt.Sprintf("ip saddr %s ip daddr %s %s dport %s", host, otherHost, proto, port),
				fmt.Sprintf("ip saddr %s ip daddr %s %s sport %s", host, otherHost, proto, port),
				fmt.Sprintf("ip saddr %s ip daddr %s %s dport %s", otherHost, host, proto, port),
				fmt.Sprintf("ip saddr %s ip daddr %s %s sport %s", otherHost, host, proto, port),
			)
		}
	}
	return dropPackets(t, matches...)
}

// productionGossip keeps memberlist's and serf's production timers and
// the registry heartbeat's (a node alone rejoins the registry's peers on
// each heartbeat, every 10 s), so the healing bound is the one a real
// cluster gets.
var productionGossip = TestHooks{}

// sees reports whether n lists every node in want with the given status.
func sees(n *Node, status string, want ...*Node) error {
	got := map[string]string{}
	for _, m := range n.gossip.Members() {
		got[m.Name] = m.Status
	}
	for _, w := range want {
		if got[w.Name()] != status {
			return fmt.Errorf("%s sees %s as %q, want %q (all: %v)", n.Name(), w.Name(), got[w.Name()], status, got)
		}
	}
	return nil
}

func TestPartitionGossipCutHealsWithoutHelp(t *testing.T) {
	needNft(t)
	dsn := bootstrappedDatabase(t)
	var nodes []*Node
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, startClusterNode(t, hostConfig(t, dsn, fmt.Sprintf("127.0.72.%d", i)), productionGossip))
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		eventually(t, 10*time.Second, func() error { return sees(n, "alive", nodes...) })
	}
	up := newUpstream(t)
	mustAdmin(t, a, 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`"}`)

	restore := cutBetween(t, c, a, b)
	// Both sides must see the cut: A and B list C failed and C lists them
	// failed. With memberlist's own transport C's TCP push/pull still
	// reached A and B, and A went on seeing C alive.
	eventually(t, 10*time.Second, func() error {
		for _, err := range []error{sees(a, "failed", c), sees(b, "failed", c), sees(c, "failed", a, b), sees(a, "alive", b)} {
			if err != nil {
				return err
			}
		}
		return nil
	})

	mustAdmin(t, a, 201, "POST", "/services/s/routes", `{"paths":["/during-cut"]}`)
	written := time.Now()
	bound := c.cfg.DBUpdateFrequency + time.Second
	eventually(t, bound, func() error { return serves(t, c, "/during-cut") })
	t.Logf("C served the write made on A %s after it, by polling (bound %s)", time.Since(written).Round(time.Millisecond), bound)

	restore()
	healed := time.Now()
	eventually(t, 2*time.Second, func() error {
		for _, n := range nodes {
			if err := sees(n, "alive", nodes...); err != nil {
				return err
			}
		}
		return agreed(t, c)
	})
	t.Logf("membership and config hashes agreed %s after the cut healed (bound 2s)", time.Since(healed).Round(time.Millisecond))
}

// TestPartitionDatabaseCutThenIsolation cuts node C off from the database
// alone, then from everything. C reaches PostgreSQL through a relay on
// its own address (startPgRelay: the test server trusts 127.0.0.1 only),
// so a rule on the relay's address cuts C's database traffic and no one
// else's. Cut off from the database, C keeps serving what it has while
// A and B keep taking writes, and C catches up once the database
// answers it again; cut off from everything, it keeps serving its last
// configuration.
func TestPartitionDatabaseCutThenIsolation(t *testing.T) {
	needNft(t)
	dsn := bootstrappedDatabase(t)
	a := startClusterNode(t, hostConfig(t, dsn, "127.0.73.1"), fastHooks)
	b := startClusterNode(t, hostConfig(t, dsn, "127.0.73.2"), fastHooks)
	cCfg := hostConfig(t, dsn, "127.0.73.3")
	relay := startPgRelay(t, "127.0.73.3", fmt.Sprintf("%s:%d", cCfg.PgHost, cCfg.PgPort))
	relayHost, relayPort := splitAddr(t, relay.ln.Addr().String())
	cCfg.PgHost = relayHost
	fmt.Sscanf(relayPort, "%d", &cCfg.PgPort)
	cCfg.PgTimeout = time.Second
	c := startClusterNode(t, cCfg, fastHooks)
	nodes := []*Node{a, b, c}
	for _, n := range nodes {
		eventually(t, 10*time.Second, func() error { return sees(n, "alive", nodes...) })
	}
	up := newUpstream(t)
	mustAdmin(t, a, 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`"}`)
	mustAdmin(t, a, 201, "POST", "/services/s/routes", `{"paths":["/before"]}`)
	eventually(t, 3*time.Second, func() error { return serves(t, c, "/before") })

	cutDB := func() func() {
		return dropPackets(t, "ip daddr "+relayHost+" tcp dport "+relayPort, "ip saddr "+relayHost+" tcp sport "+relayPort)
	}
	restoreDB := cutDB()
	mustAdmin(t, a, 201, "POST", "/services/s/routes", `{"paths":["/from-a"]}`)
	mustAdmin(t, b, 201, "POST", "/services/s/routes", `{"paths":["/from-b"]}`)
	for _, n := range []*Node{a, b} {
		for _, path := range []string{"/from-a", "/from-b"} {
			eventually(t, 3*time.Second, func() error { return serves(t, n, path) })
		}
	}
	eventually(t, 10*time.Second, func() error {
		if databaseReachable(t, c) {
			return fmt.Errorf("C's /status says the database is reachable while C is cut off from it")
		}
		return nil
	})
	if err := serves(t, c, "/before"); err != nil {
		t.Errorf("C stopped serving its configuration while cut off from the database: %v", err)
	}

	restoreDB()
	for _, path := range []string{"/from-a", "/from-b"} {
		eventually(t, 10*time.Second, func() error { return serves(t, c, path) })
	}

	// Isolated from everything: no gossip, no database.
	cutBetween(t, c, a, b)
	cutDB()
	eventually(t, 10*time.Second, func() error { return sees(c, "failed", a, b) })
	eventually(t, 10*time.Second, func() error {
		if databaseReachable(t, c) {
			return fmt.Errorf("C's /status says the database is reachable while C is isolated")
		}
		return nil
	})
	for _, path := range []string{"/before", "/from-a", "/from-b"} {
		if err := serves(t, c, path); err != nil {
			t.Errorf("isolated C stopped serving its last configuration: %v", err)
		}
	}
}
