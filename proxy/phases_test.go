package proxy

import (
	"strings"
	"sync"
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// recorder notes which hooks ran, from the proxy's goroutines.
type recorder struct {
	mu  sync.Mutex
	ran []string
}

func (r *recorder) hook(name string, fn func(pdk.Exchange)) Hook {
	return func(x pdk.Exchange) {
		r.mu.Lock()
		r.ran = append(r.ran, name)
		r.mu.Unlock()
		if fn != nil {
			fn(x)
		}
	}
}

func (r *recorder) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := strings.Join(r.ran, " ")
	r.ran = nil
	return out
}

// TestPhasesRunInKongOrder checks the plugin seam end to end: the most
// specific instance of a plugin applies, hooks run in PRIORITY order (ties
// by name, descending, as Kong's sort_by_handler_priority in
// kong/db/dao/plugins.lua), rewrite runs only global plugins, header
// edits reach the upstream, and a later change of plugins rebuilds the
// plan of the routes it touches.
func TestPhasesRunInKongOrder(t *testing.T) {
	up := newUpstream(t, nil)
	rec := &recorder{}
	plugin := func(id, name string, prio int, routeID, serviceID string) PluginInstance {
		p := PluginInstance{ID: id, Name: name, Priority: prio, RouteID: routeID, ServiceID: serviceID}
		tag := name + "@" + id
		p.Hooks[PhaseRewrite] = rec.hook("rewrite:"+tag, nil)
		p.Hooks[PhaseAccess] = rec.hook("access:"+tag, nil)
		p.Hooks[PhaseLog] = rec.hook("log:"+tag, nil)
		return p
	}
	edit := plugin("p-edit", "a", 10, idA, "")
	edit.Hooks[PhaseAccess] = rec.hook("access:a@p-edit", func(x pdk.Exchange) {
		x.SetUpstreamHeader("X-Set", "new")
		x.ClearUpstreamHeader("X-Drop")
		x.AddUpstreamHeader("X-Add", "1")
	})
	edit.Hooks[PhaseHeaderFilter] = rec.hook("header_filter:a@p-edit", func(x pdk.Exchange) {
		x.SetResponseHeader("X-Plugin", "a")
	})
	b := NewBuilder()
	b.Apply(SnapshotChange{Put: SnapshotInput{
		Services: []entity.Service{testService(t, "s1", up.addr())},
		Routes:   []entity.Route{testRoute(idA, "s1", paths("/a")), testRoute(idB, "s1", paths("/plain"))},
		Plugins: []PluginInstance{
			plugin("p-global-a", "a", 10, "", ""), // loses to the route's "a"
			plugin("p-b", "b", 1000, "", ""),
			plugin("p-c", "c", 10, "", "s1"), // ties with "a": "c" first
			edit,
		},
	}})
	s := startProxy(t, b.Snapshot())

	status, hdr, _ := send(t, s, "GET", "/a", map[string]string{"X-Set": "old", "X-Drop": "x"})
	if status != 200 || hdr.Get("X-Plugin") != "a" {
		t.Fatalf("got %d with X-Plugin %q, want 200 with a", status, hdr.Get("X-Plugin"))
	}
	want := "rewrite:b@p-b access:b@p-b access:c@p-c access:a@p-edit header_filter:a@p-edit log:b@p-b log:c@p-c log:a@p-edit"
	if got := rec.take(); got != want {
		t.Errorf("got hooks\n  %s\nwant\n  %s", got, want)
	}
	got := up.last(t).Header
	if got.Get("X-Set") != "new" || len(got.Values("X-Set")) != 1 || got.Get("X-Drop") != "" || got.Get("X-Add") != "1" {
		t.Errorf("got upstream headers X-Set %q, X-Drop %q, X-Add %q; want new, none, 1",
			got.Values("X-Set"), got.Get("X-Drop"), got.Get("X-Add"))
	}

	// Deleting the route's "a" lets the global one apply.
	b.Apply(SnapshotChange{Deleted: SnapshotIDs{Plugins: []string{"p-edit"}}})
	s.Swap(b.Snapshot())
	send(t, s, "GET", "/a", nil)
	want = "rewrite:b@p-b rewrite:a@p-global-a access:b@p-b access:c@p-c access:a@p-global-a log:b@p-b log:c@p-c log:a@p-global-a"
	if got := rec.take(); got != want {
		t.Errorf("after the delete: got hooks\n  %s\nwant\n  %s", got, want)
	}
}

// TestPhaseExit checks that an access hook can answer the request: nothing
// goes upstream, and the log hooks still run.
func TestPhaseExit(t *testing.T) {
	up := newUpstream(t, nil)
	rec := &recorder{}
	deny := PluginInstance{ID: "p1", Name: "deny", Priority: 1, RouteID: idA}
	deny.Hooks[PhaseAccess] = rec.hook("access", func(x pdk.Exchange) {
		x.Exit(403, []byte("no"), "")
	})
	deny.Hooks[PhaseLog] = rec.hook("log", nil)
	snap, _ := NewSnapshot(SnapshotInput{
		Services: []entity.Service{testService(t, "s1", up.addr())},
		Routes:   []entity.Route{testRoute(idA, "s1", paths("/"))},
		Plugins:  []PluginInstance{deny},
	})
	s := startProxy(t, snap)
	if status, _, body := send(t, s, "GET", "/x", nil); status != 403 || body != "no" {
		t.Errorf("got %d %q, want 403 \"no\"", status, body)
	}
	if got := rec.take(); got != "access log" {
		t.Errorf("got hooks %q, want \"access log\"", got)
	}
	if n := up.conns.Load(); n != 0 {
		t.Errorf("got %d upstream connections, want none", n)
	}
}

// TestConsumerPrecedence checks Kong's lookup_cfg order once an earlier
// plugin identified the consumer (kong/runloop/plugins_iterator.lua):
// route+service+consumer, route+consumer, service+consumer, route+service,
// consumer, route, service, global; and that a plugin running before the
// consumer is known gets the consumer-less instance.
func TestConsumerPrecedence(t *testing.T) {
	up := newUpstream(t, nil)
	auth := PluginInstance{ID: "auth", Name: "auth", Priority: 1000}
	auth.Hooks[PhaseAccess] = func(x pdk.Exchange) {
		if who, _ := x.Header("X-Who"); len(who) > 0 {
			x.Authenticate(&pdk.Consumer{ID: string(who)}, nil)
		}
	}
	tag := func(id, routeID, serviceID, consumerID string) PluginInstance {
		p := PluginInstance{ID: id, Name: "tag", Priority: 10, RouteID: routeID, ServiceID: serviceID, ConsumerID: consumerID}
		p.Hooks[PhaseHeaderFilter] = func(x pdk.Exchange) { x.AddResponseHeader("X-Tag", id) }
		return p
	}
	// "early" outranks auth: it runs before the consumer is known.
	early := PluginInstance{ID: "early-c1", Name: "early", Priority: 2000, ConsumerID: "c1"}
	early.Hooks[PhaseHeaderFilter] = func(x pdk.Exchange) { x.AddResponseHeader("X-Early", "ran") }
	snap, warnings := NewSnapshot(SnapshotInput{
		Services: []entity.Service{testService(t, "s1", up.addr()), testService(t, "s2", up.addr())},
		Routes:   []entity.Route{testRoute(idA, "s1", paths("/a")), testRoute(idB, "s1", paths("/b")), testRoute(idC, "s2", paths("/c"))},
		Plugins: []PluginInstance{auth, early,
			tag("global", "", "", ""),
			tag("c1", "", "", "c1"),
			tag("s1", "", "s1", ""),
			tag("b+s1", idB, "s1", ""),
			tag("b+c2", idB, "", "c2"),
			tag("s1+c3", "", "s1", "c3"),
			tag("b+s1+c3", idB, "s1", "c3"),
		},
	})
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	s := startProxy(t, snap)
	tests := []struct{ name, path, who, want string }{
		{"no consumer: service", "/a", "", "s1"},
		{"consumer beats service", "/a", "c1", "c1"},
		{"unknown consumer: service", "/a", "c9", "s1"},
		{"service+consumer", "/a", "c3", "s1+c3"},
		{"route+service beats consumer", "/b", "c1", "b+s1"},
		{"route+consumer beats route+service", "/b", "c2", "b+c2"},
		{"route+service+consumer first", "/b", "c3", "b+s1+c3"},
		{"other service: consumer beats global", "/c", "c1", "c1"},
		{"other service: global", "/c", "c2", "global"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, hdr, _ := send(t, s, "GET", tt.path, map[string]string{"X-Who": tt.who})
			if got := strings.Join(hdr.Values("X-Tag"), ","); got != tt.want {
				t.Errorf("got X-Tag %q, want %q", got, tt.want)
			}
			if got := hdr.Get("X-Early"); got != "" {
				t.Errorf("got X-Early %q, want none: it runs before auth", got)
			}
		})
	}
}

func TestHeaderEdits(t *testing.T) {
	tests := []struct {
		name string
		edit func(*HeaderEdits)
		want string // headers appended after the client's
		drop []string
		keep []string
	}{
		{"none", func(*HeaderEdits) {}, "", nil, []string{"X-A"}},
		{"add keeps the client's", func(e *HeaderEdits) { e.Add("X-A", "2") }, "X-A: 2\r\n", nil, []string{"X-A"}},
		{"set replaces", func(e *HeaderEdits) { e.Set("x-a", "2") }, "x-a: 2\r\n", []string{"X-A"}, nil},
		{"last set wins", func(e *HeaderEdits) { e.Set("X-A", "1"); e.Set("X-A", "2") }, "X-A: 2\r\n", []string{"X-A"}, nil},
		{"remove", func(e *HeaderEdits) { e.Remove("X-A") }, "", []string{"X-A"}, []string{"X-B"}},
		{"remove after add", func(e *HeaderEdits) { e.Add("X-A", "1"); e.Remove("X-A") }, "", []string{"X-A"}, nil},
		{"add after remove", func(e *HeaderEdits) { e.Remove("X-A"); e.Add("X-A", "3") }, "X-A: 3\r\n", []string{"X-A"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e HeaderEdits
			tt.edit(&e)
			if got := string(e.appendHeaders(nil)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			for _, n := range tt.drop {
				if !e.drops([]byte(n)) {
					t.Errorf("got client header %s kept, want it dropped", n)
				}
			}
			for _, n := range tt.keep {
				if e.drops([]byte(n)) {
					t.Errorf("got client header %s dropped, want it kept", n)
				}
			}
		})
	}
}

// TestKeyedOutlivesSwaps checks the per-entity state the Server keeps:
// values of entities still present survive a swap, those of removed
// entities are dropped, after an incremental or a full build.
func TestKeyedOutlivesSwaps(t *testing.T) {
	s := New(DefaultConfig())
	var dropped []string
	counters := NewKeyed(s, func(id string) *string { return &id }, func(v *string) { dropped = append(dropped, *v) })
	b := NewBuilder()
	b.Apply(SnapshotChange{Put: SnapshotInput{Routes: []entity.Route{testRoute(idA, "", paths("/a")), testRoute(idB, "", paths("/b"))}}})
	s.Swap(b.Snapshot())
	a, bb := counters.Get(idA), counters.Get(idB)
	counters.Get(idC) // not in the configuration at all

	b.Apply(SnapshotChange{Deleted: SnapshotIDs{Routes: []string{idB}}})
	s.Swap(b.Snapshot())
	if counters.Get(idA) != a {
		t.Errorf("got a new value for %s after a swap, want the same", idA)
	}
	if strings.Join(dropped, ",") != idB {
		t.Errorf("got dropped %v, want [%s]", dropped, idB)
	}
	if counters.Get(idB) == bb {
		t.Errorf("got the old value for the deleted %s, want a fresh one", idB)
	}

	dropped = nil
	full, _ := NewSnapshot(SnapshotInput{Routes: []entity.Route{testRoute(idA, "", paths("/a"))}})
	s.Swap(full)
	if counters.Len() != 1 || counters.Get(idA) != a || len(dropped) != 2 {
		t.Errorf("after a full build: got %d values (dropped %v), want only %s's", counters.Len(), dropped, idA)
	}
}
