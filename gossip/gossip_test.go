package gossip

import (
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/internal/testutil"
)

var eventually = testutil.Eventually

// hintLog records the hints a member received.
type hintLog struct {
	mu    sync.Mutex
	hints []Hint
}

func (l *hintLog) add(h Hint) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hints = append(l.hints, h)
}

func (l *hintLog) has(eventID int64) bool { return l.count(eventID) > 0 }

func (l *hintLog) count(eventID int64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, h := range l.hints {
		if h.EventID == eventID {
			n++
		}
	}
	return n
}

// member starts a cluster member on 127.0.1.<i>:7946 with fast timers.
func member(t *testing.T, i int, key []byte, adjust ...func(*Config)) (*Cluster, *hintLog) {
	t.Helper()
	hints := &hintLog{}
	cfg := Config{
		NodeName:   fmt.Sprintf("node-%d", i),
		BindAddr:   fmt.Sprintf("127.0.1.%d:7946", i),
		EncryptKey: key,
		FastTimers: true,
		Tags:       map[string]string{"role": "test"},
		OnHint:     hints.add,
		Logger:     zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}
	for _, f := range adjust {
		f(&cfg)
	}
	c, err := Start(cfg)
	if err != nil {
		t.Fatalf("starting member %d: %v", i, err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	return c, hints
}

func statuses(c *Cluster) map[string]string {
	out := map[string]string{}
	for _, m := range c.Members() {
		out[m.Name] = m.Status
	}
	return out
}

func wantStatuses(c *Cluster, want map[string]string) error {
	got := statuses(c)
	for name, status := range want {
		if got[name] != status {
			return fmt.Errorf("%s sees %v, want %s %s", c.Name(), got, name, status)
		}
	}
	return nil
}

func TestMembersJoinSeeEachOtherAndTags(t *testing.T) {
	a, _ := member(t, 1, nil)
	b, _ := member(t, 2, nil)
	c, _ := member(t, 3, nil)
	for _, m := range []*Cluster{b, c} {
		if n, err := m.Join([]string{a.AdvertiseAddr()}); err != nil || n != 1 {
			t.Fatalf("join: got %d, %v; want 1, nil", n, err)
		}
	}
	all := map[string]string{"node-1": "alive", "node-2": "alive", "node-3": "alive"}
	for _, m := range []*Cluster{a, b, c} {
		eventually(t, 5*time.Second, func() error { return wantStatuses(m, all) })
	}
	if err := b.SetTags(map[string]string{"config_hash": "abc"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		for _, m := range c.Members() {
			if m.Name == "node-2" && m.Tags["config_hash"] == "abc" && m.Tags["role"] == "test" {
				return nil
			}
		}
		return fmt.Errorf("node-3 does not see node-2's tags: %+v", c.Members())
	})
}

func TestBroadcastReachesEveryMember(t *testing.T) {
	a, hintsA := member(t, 1, nil)
	b, hintsB := member(t, 2, nil)
	c, hintsC := member(t, 3, nil)
	for _, m := range []*Cluster{b, c} {
		if _, err := m.Join([]string{a.AdvertiseAddr()}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, func() error {
		return wantStatuses(c, map[string]string{"node-1": "alive", "node-2": "alive"})
	})
	for id := int64(1); id <= 20; id++ {
		if err := b.Broadcast(Hint{EventID: id, Table: "routes", ID: "0c7a5b52-8a7e-4b0e-9e1b-6d9c2a1f0b11", Op: "update", Origin: "node-2"}); err != nil {
			t.Fatal(err)
		}
	}
	for name, hints := range map[string]*hintLog{"a": hintsA, "b (sender)": hintsB, "c": hintsC} {
		eventually(t, 5*time.Second, func() error {
			for id := int64(1); id <= 20; id++ {
				if !hints.has(id) {
					return fmt.Errorf("member %s lacks hint %d", name, id)
				}
			}
			return nil
		})
	}
}

func TestWrongEncryptKeyCannotJoin(t *testing.T) {
	keyA := []byte("0123456789abcdef")
	keyB := []byte("fedcba9876543210")
	a, _ := member(t, 1, keyA)
	b, _ := member(t, 2, keyB)
	if n, err := b.Join([]string{a.AdvertiseAddr()}); err == nil || n != 0 {
		t.Fatalf("join with a wrong key: got %d, %v; want 0 and an error", n, err)
	}
	c, _ := member(t, 3, keyA)
	if n, err := c.Join([]string{a.AdvertiseAddr()}); err != nil || n != 1 {
		t.Fatalf("join with the right key: got %d, %v; want 1, nil", n, err)
	}
	if got := statuses(a); got["node-2"] != "" {
		t.Fatalf("node-1 knows node-2 (%v), want it never joined", got)
	}
}

func TestKeyRotationWithoutDowntime(t *testing.T) {
	oldKey := []byte("0123456789abcdef")
	newKey := base64.StdEncoding.EncodeToString([]byte("abcdefghijklmnopqrstuvwxyz012345"))
	a, _ := member(t, 1, oldKey)
	b, hintsB := member(t, 2, oldKey)
	if _, err := b.Join([]string{a.AdvertiseAddr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error { return wantStatuses(a, map[string]string{"node-2": "alive"}) })
	steps := []struct {
		name string
		run  func() (KeyReport, error)
	}{
		{"install", func() (KeyReport, error) { return a.InstallKey(newKey) }},
		{"use", func() (KeyReport, error) { return a.UseKey(newKey) }},
		{"remove old", func() (KeyReport, error) { return a.RemoveKey(base64.StdEncoding.EncodeToString(oldKey)) }},
	}
	for _, step := range steps {
		report, err := step.run()
		if err != nil || report.NumResp != 2 {
			t.Fatalf("%s: got %+v, %v; want 2 answers and no error", step.name, report, err)
		}
	}
	report, err := a.ListKeys()
	if err != nil || report.Keys[newKey] != 2 || len(report.Keys) != 1 || report.Primary[newKey] != 2 {
		t.Fatalf("list after rotation: got %+v, %v; want only the new key, primary on both", report, err)
	}
	if err := a.Broadcast(Hint{EventID: 7, Table: "services", ID: "x", Op: "create", Origin: "node-1"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		if !hintsB.has(7) {
			return fmt.Errorf("hint not received under the new key")
		}
		return nil
	})
	if _, err := a.InstallKey("not-base64!"); err == nil {
		t.Fatal("installing a malformed key: got no error")
	}
}

func TestReachabilityAndForceLeave(t *testing.T) {
	a, _ := member(t, 1, nil)
	b, _ := member(t, 2, nil)
	c, _ := member(t, 3, nil)
	for _, m := range []*Cluster{b, c} {
		if _, err := m.Join([]string{a.AdvertiseAddr()}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, func() error {
		return wantStatuses(a, map[string]string{"node-2": "alive", "node-3": "alive"})
	})
	// Under the race detector on a busy machine one answer can miss a
	// query's deadline; what must hold is that all three answer.
	eventually(t, 10*time.Second, func() error {
		r, err := a.Reachability(2 * time.Second)
		if err != nil {
			return err
		}
		if strings.Join(r.Answered, ",") != "node-1,node-2,node-3" || len(r.Missing) != 0 {
			return fmt.Errorf("got %+v, want all three answering", r)
		}
		return nil
	})

	_ = c.Shutdown() // dies without leaving
	eventually(t, 10*time.Second, func() error { return wantStatuses(a, map[string]string{"node-3": "failed"}) })
	if err := a.ForceLeave("node-3"); err != nil {
		t.Fatal(err)
	}
	// serf sends the removal once, and not at all while node-1 counts no
	// peer alive (a busy machine can make node-2 look dead for a moment);
	// an operator repeats the command then, and so does the test.
	lastTry := time.Now()
	eventually(t, 10*time.Second, func() error {
		if s := statuses(b)["node-3"]; s != "" && s != "left" {
			if time.Since(lastTry) > time.Second {
				lastTry = time.Now()
				if err := a.ForceLeave("node-3"); err != nil {
					return err
				}
			}
			return fmt.Errorf("node-2 still sees node-3 as %s", s)
		}
		return nil
	})
}

func TestBindErrorNamesTheKey(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.1.9:7946")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = Start(Config{NodeName: "x", BindAddr: "127.0.1.9:7946", FastTimers: true, Logger: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "cluster_listen 127.0.1.9:7946") {
		t.Fatalf("got %v, want an error naming cluster_listen", err)
	}
}

func TestHintEncoding(t *testing.T) {
	h := Hint{EventID: 42, Table: "routes", ID: "0c7a5b52-8a7e-4b0e-9e1b-6d9c2a1f0b11", Op: "delete", Origin: "host-a:7946"}
	got, err := decodeHint(h.encode())
	if err != nil || got != h {
		t.Fatalf("round trip: got %+v, %v; want %+v", got, err, h)
	}
	if n := len(h.encode()); n > 128 {
		t.Errorf("hint is %d bytes, want it well below serf's 512-byte limit", n)
	}
	bad := []struct{ name, payload string }{
		{"empty", ""},
		{"wrong version", "v9|1|routes|x|create|n"},
		{"too few parts", "v1|1|routes"},
		{"id not a number", "v1|abc|routes|x|create|n"},
		{"negative id", "v1|-3|routes|x|create|n"},
		{"oversized", "v1|1|" + strings.Repeat("x", 300) + "|x|create|n"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeHint([]byte(tt.payload)); err == nil {
				t.Fatalf("decodeHint(%q): got no error", tt.payload)
			}
		})
	}
}

func TestAdvertiseAddr(t *testing.T) {
	tests := []struct {
		name, configured, bindHost string
		bindPort                   int
		want                       string
		wantErr                    string
	}{
		{"configured wins", "10.1.2.3:7000", "0.0.0.0", 7946, "10.1.2.3:7000", ""},
		{"specific bind", "", "127.0.0.2", 7946, "127.0.0.2:7946", ""},
		{"configured wildcard rejected", "0.0.0.0:7946", "0.0.0.0", 7946, "", "specific IP"},
		{"configured garbage rejected", "nope", "0.0.0.0", 7946, "", "cluster_advertise"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, port, err := advertiseAddr(tt.configured, tt.bindHost, tt.bindPort)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if got := net.JoinHostPort(host, fmt.Sprint(port)); err != nil || got != tt.want {
				t.Fatalf("got %s, %v; want %s", got, err, tt.want)
			}
		})
	}
	t.Run("wildcard never advertises loopback", func(t *testing.T) {
		host, _, err := advertiseAddr("", "0.0.0.0", 7946)
		if err == nil && net.ParseIP(host).IsLoopback() {
			t.Fatalf("got %s, want a non-loopback address or an error", host)
		}
	})
}

func TestDirectSendDeliversWithoutGossipAndOnlyOnce(t *testing.T) {
	// Queued broadcasts leave with gossip rounds and piggyback on probes:
	// with both an hour apart, only the direct send can deliver.
	slowGossip := func(c *Config) { c.GossipInterval, c.ProbeInterval = time.Hour, time.Hour }
	tests := []struct {
		name       string
		gossipOnly bool
		want       bool
	}{
		{"direct send delivers", false, true},
		{"control: gossip alone does not within the window", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sender, _ := member(t, 1, []byte("0123456789abcdef"), slowGossip, func(c *Config) { c.GossipOnlyForTest = tt.gossipOnly })
			receiver, hints := member(t, 2, []byte("0123456789abcdef"), slowGossip)
			if _, err := receiver.Join([]string{sender.AdvertiseAddr()}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, func() error { return wantStatuses(sender, map[string]string{"node-2": "alive"}) })
			if err := sender.Broadcast(Hint{EventID: 5, Table: "routes", ID: "x", Op: "create", Origin: "node-1"}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond)
			if got := hints.has(5); got != tt.want {
				t.Fatalf("got hint delivered %t, want %t", got, tt.want)
			}
		})
	}
	t.Run("direct and gossiped copies are one event", func(t *testing.T) {
		sender, _ := member(t, 1, nil)
		receiver, hints := member(t, 2, nil)
		if _, err := receiver.Join([]string{sender.AdvertiseAddr()}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, func() error { return wantStatuses(sender, map[string]string{"node-2": "alive"}) })
		for id := int64(1); id <= 10; id++ {
			if err := sender.Broadcast(Hint{EventID: id, Table: "routes", ID: "x", Op: "update", Origin: "node-1"}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second) // let gossip retransmit every copy
		for id := int64(1); id <= 10; id++ {
			if n := hints.count(id); n != 1 {
				t.Errorf("hint %d delivered %d times, want once (the direct copy must match serf's own encoding)", id, n)
			}
		}
	})
}

func TestProbedMembersReportsSuspects(t *testing.T) {
	a, _ := member(t, 1, nil)
	b, _ := member(t, 2, nil, func(c *Config) { c.ProbeInterval = time.Hour }) // b never probes a
	if _, err := b.Join([]string{a.AdvertiseAddr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error { return wantStatuses(b, map[string]string{"node-1": "alive"}) })
	if got := probedStatus(b, "node-1"); got != "alive" {
		t.Fatalf("got node-1 %s while it answers, want alive", got)
	}
	_ = a.Shutdown() // gone, but b has not noticed yet
	if got := probedStatus(b, "node-1"); got != "suspect" {
		t.Fatalf("got node-1 %s after it stopped answering, want suspect", got)
	}
}

func probedStatus(c *Cluster, name string) string {
	for _, m := range c.ProbedMembers() {
		if m.Name == name {
			return m.Status
		}
	}
	return ""
}

func TestQueryStatusAsksEveryMember(t *testing.T) {
	withStatus := func(hash string) func(*Config) {
		return func(c *Config) { c.Status = func() map[string]string { return map[string]string{"hash": hash} } }
	}
	a, _ := member(t, 1, nil, withStatus("aaa"))
	b, _ := member(t, 2, nil, withStatus("bbb"))
	silent, _ := member(t, 3, nil) // answers no status query
	for _, m := range []*Cluster{b, silent} {
		if _, err := m.Join([]string{a.AdvertiseAddr()}); err != nil {
			t.Fatal(err)
		}
	}
	all := map[string]string{"node-1": "alive", "node-2": "alive", "node-3": "alive"}
	eventually(t, 5*time.Second, func() error { return wantStatuses(a, all) })
	got := map[string]string{}
	for _, m := range a.LiveMembers(time.Second) {
		got[m.Name] = fmt.Sprint(m.Live)
	}
	want := map[string]string{"node-1": "map[hash:aaa]", "node-2": "map[hash:bbb]", "node-3": "map[]"}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("member %s: got live status %s, want %s", name, got[name], w)
		}
	}
}

// TestQueryTimeoutKeepsSerfsDesign: the short gossip interval must not
// shorten serf's query timeout (it was 320 ms, and key rotation failed
// on a busy host).
func TestQueryTimeoutKeepsSerfsDesign(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
	}{
		{"default 20ms", 0},
		{"5ms", 5 * time.Millisecond},
		{"LAN 200ms", 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := member(t, 1, nil, func(c *Config) { c.GossipInterval = tc.interval })
			// One member: ⌈log10(2)⌉ = 1, so serf's designed timeout is 16 × 200 ms.
			if got, want := c.serf.DefaultQueryTimeout(), 3200*time.Millisecond; got < want {
				t.Fatalf("got query timeout %s, want at least %s", got, want)
			}
		})
	}
}

func TestSerfLogLevelsAndLimit(t *testing.T) {
	var buf strings.Builder
	w := newZerologWriter(zerolog.New(&buf).Level(zerolog.InfoLevel))
	lines := []string{
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:1",
		"[INFO] serf: EventMemberJoin: a 127.0.0.1",
		"[WARN] memberlist: Refuting a suspect message (from: b)",
	}
	for i := 0; i < logBurst+3; i++ {
		lines = append(lines, fmt.Sprintf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=127.0.0.%d:7946", i))
	}
	for _, l := range lines {
		if _, err := w.Write([]byte(l + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	for _, tc := range []struct {
		name, want string
		count      int
	}{
		{"debug and info stay below the default level", `"level":"debug"`, 0},
		{"info stays at debug", "EventMemberJoin", 0},
		{"warn at warn", `{"level":"warn","component":"serf","message":"memberlist: Refuting a suspect message (from: b)"}`, 1},
		{"a flood of errors limited to the burst", `"level":"error"`, logBurst},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Count(out, tc.want); got != tc.count {
				t.Fatalf("got %d lines with %s, want %d:\n%s", got, tc.want, tc.count, out)
			}
		})
	}
	// The next period's first line says how many were left out.
	ok, suppressed := w.limit.allow("memberlist: Decrypt packet failed", time.Now().Add(logPeriod))
	if !ok || suppressed != 3 {
		t.Fatalf("next period: got allowed %v with %d suppressed, want true and 3", ok, suppressed)
	}
}

func TestHandlerPanicIsLoggedWithItsStack(t *testing.T) {
	var buf testutil.LogBuffer
	c, _ := member(t, 1, nil, func(c *Config) {
		c.Logger = zerolog.New(&buf)
		c.OnHint = func(Hint) { panic("boom in the hint handler") }
	})
	if err := c.Broadcast(Hint{EventID: 1, Table: "services", ID: "x", Op: "create", Origin: "node-1"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		out := buf.String()
		if !strings.Contains(out, `"level":"error"`) || !strings.Contains(out, "boom in the hint handler") || !strings.Contains(out, "gossip.TestHandlerPanicIsLoggedWithItsStack") {
			return fmt.Errorf("no error line with the panic and a stack naming the panicking function: %s", out)
		}
		return nil
	})
}
