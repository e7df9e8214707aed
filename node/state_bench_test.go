package node

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/store"
)

// BenchmarkApplyRouteChange is what the applier spends on one route
// change on a configuration of n routes (one service per ten routes),
// without the database: decode the re-read row into the state, build and
// swap in the snapshot, hash the configuration (applier.rebuild).
func BenchmarkApplyRouteChange(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			state := benchState(b, n)
			srv := proxy.New(proxy.DefaultConfig())
			srv.Swap(mustBuild(b, state))
			// Two versions of one route, applied in turn so each
			// iteration is a real change.
			changed := [2]store.Row{benchRouteRow(b, n/2, "/changed-a"), benchRouteRow(b, n/2, "/changed-b")}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := state.put(store.Routes.Name, changed[i%2]); err != nil {
					b.Fatal(err)
				}
				srv.Swap(mustBuild(b, state))
				if state.hash() == "" {
					b.Fatal("empty hash")
				}
				i++
			}
		})
	}
}

func mustBuild(b *testing.B, state *configState) *proxy.Snapshot {
	snap, warnings := state.snapshot()
	if len(warnings) > 0 {
		b.Fatalf("snapshot warnings: %v", warnings)
	}
	return snap
}

// benchState is a state of n routes over n/10 services.
func benchState(b *testing.B, n int) *configState {
	state := newConfigState()
	for i := 0; i < max(n/10, 1); i++ {
		svc := entity.Service{ID: benchID(1, i), Protocol: "http", Host: fmt.Sprintf("svc-%d.internal", i), Port: 80,
			Retries: 5, ConnectTimeout: 60000, ReadTimeout: 60000, WriteTimeout: 60000, Enabled: true}
		if err := state.put(store.Services.Name, benchRow(b, svc.ID, svc)); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		if err := state.put(store.Routes.Name, benchRouteRow(b, i, fmt.Sprintf("/api/route-%d", i))); err != nil {
			b.Fatal(err)
		}
	}
	return state
}

func benchRouteRow(b testing.TB, i int, path string) store.Row {
	r := entity.Route{
		ID: benchID(2, i), Protocols: []string{"http", "https"}, Paths: []string{path},
		HTTPSRedirectStatusCode: 426, StripPath: true, PathHandling: "v0",
		RequestBuffering: true, ResponseBuffering: true,
		Service: &entity.ForeignKey{ID: benchID(1, i/10)},
	}
	if i%3 == 1 {
		r.Hosts = []string{fmt.Sprintf("host-%d.example.com", i)}
	}
	return benchRow(b, r.ID, r)
}

func benchRow(b testing.TB, id string, v any) store.Row {
	doc, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return store.Row{ID: id, Doc: doc}
}

func benchID(kind, i int) string { return fmt.Sprintf("%08d-0000-4000-8000-%012d", kind, i) }
