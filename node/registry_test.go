package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/store"
)

// widget is the Go type of the throwaway kind.
type widget struct {
	ID        string             `json:"id"`
	CreatedAt int64              `json:"created_at"`
	UpdatedAt int64              `json:"updated_at"`
	Name      *string            `json:"name"`
	Serial    *string            `json:"serial"`
	Size      int                `json:"size"`
	Tags      []string           `json:"tags"`
	Service   *entity.ForeignKey `json:"service"`
}

// widgetsMigration creates the table store.TableOf derives for widgets:
// the common columns, one per unique field and one per foreign field.
// Its foreign key cascades, as its schema says.
const widgetsMigration = `CREATE TABLE widgets (
    id         uuid   PRIMARY KEY,
    name       text   UNIQUE,
    serial     text   UNIQUE,
    service_id uuid   REFERENCES services (id) ON DELETE CASCADE,
    tags       text[],
    created_at bigint,
    updated_at bigint,
    doc        jsonb  NOT NULL
);
CREATE INDEX widgets_service_id_idx ON widgets (service_id);`

// registerWidgets declares the throwaway kind the way a real one is: a
// registry call with its schema, and its migration. Nothing else.
func registerWidgets(t *testing.T) {
	t.Helper()
	schema := &entity.Schema{Name: "widgets", EndpointKey: "name", Fields: []entity.Field{
		{Name: "id", Type: entity.TypeString, UUID: true, Auto: true},
		{Name: "created_at", Type: entity.TypeInteger, Timestamp: true, Auto: true},
		{Name: "updated_at", Type: entity.TypeInteger, Timestamp: true, Auto: true},
		{Name: "name", Type: entity.TypeString, Unique: true},
		{Name: "serial", Type: entity.TypeString, Unique: true},
		{Name: "size", Type: entity.TypeInteger, Default: int64(1), Between: []int64{1, 10}},
		{Name: "tags", Type: entity.TypeSet, Elements: &entity.Field{Type: entity.TypeString}},
		// As a plugin's service in kong/db/schema/entities/plugins.lua.
		{Name: "service", Type: entity.TypeForeign, Reference: "services", Required: true, OnDelete: entity.OnDeleteCascade},
	}}
	remove, err := entity.RegisterForTest(&entity.Kind{Schema: schema, Config: true, Decode: entity.DecodeAs[widget]()})
	if err != nil {
		t.Fatalf("register widgets: %v", err)
	}
	t.Cleanup(remove)
	t.Cleanup(store.AddMigrationForTest("900_widgets", widgetsMigration))
}

// TestThrowawayKindThroughTheRegistryAlone: a kind declared by a registry
// call, a schema and a migration only is served by the Admin API with
// nesting under its parent, stored with its cluster_events, hinted to a
// second node that loads it into its configuration, and follows its
// on_delete rule. Not parallel: the kind is in the process-wide registry.
func TestThrowawayKindThroughTheRegistryAlone(t *testing.T) {
	registerWidgets(t)
	dsn := bootstrappedDatabase(t)
	a := startClusterNode(t, clusterConfig(t, dsn), fastHooks)
	// b polls once a minute: within the test, changes reach it by hint.
	cfgB := clusterConfig(t, dsn)
	cfgB.DBUpdateFrequency = time.Minute
	b := startClusterNode(t, cfgB, fastHooks)
	eventually(t, 10*time.Second, func() error {
		if n := b.aliveMembers(); n != 2 {
			return fmt.Errorf("b sees %d alive members, want 2", n)
		}
		return nil
	})
	sameHash := func(old string) func() error {
		return func() error {
			if ha, hb := a.ConfigHash(), b.ConfigHash(); ha != hb || ha == old {
				return fmt.Errorf("got hashes a=%s b=%s, want equal and not %s", ha, hb, old)
			}
			return nil
		}
	}

	mustAdmin(t, a, 201, "POST", "/services", `{"name":"s","host":"s.test"}`)
	eventually(t, 3*time.Second, sameHash(""))
	before := a.ConfigHash()

	t.Run("admin API", func(t *testing.T) {
		w := mustAdmin(t, a, 201, "POST", "/services/s/widgets", `{"name":"w1","serial":"X1"}`)
		if w["size"] != 1.0 || w["service"].(map[string]any)["id"] == nil {
			t.Fatalf("got widget %v, want size 1 (the default) and the service's id", w)
		}
		mustAdmin(t, b, 200, "GET", "/widgets/w1", "")
		mustAdmin(t, b, 200, "GET", "/services/s/widgets/w1", "")
		if got := mustAdmin(t, b, 200, "GET", "/services/s/widgets", "")["data"].([]any); len(got) != 1 {
			t.Errorf("got %d widgets of s, want 1", len(got))
		}
		if got := mustAdmin(t, a, 200, "PATCH", "/widgets/w1", `{"size":3}`); got["size"] != 3.0 {
			t.Errorf("got size %v after PATCH, want 3", got["size"])
		}
		mustAdmin(t, a, 400, "PATCH", "/widgets/w1", `{"size":11}`)
		// A second unique field besides the endpoint key, and a
		// reference given by the parent's name.
		mustAdmin(t, a, 409, "POST", "/widgets", `{"name":"w2","serial":"X1","service":{"name":"s"}}`)
		mustAdmin(t, a, 200, "PUT", "/widgets/w2", `{"serial":"X2","service":{"name":"s"}}`)
		mustAdmin(t, a, 204, "DELETE", "/widgets/w2", "")
		schema := mustAdmin(t, a, 200, "GET", "/schemas/widgets", "")
		if got := fmt.Sprint(schema["fields"]); !containsAll(got, "on_delete:cascade", "reference:services") {
			t.Errorf("got schema fields %s, want the service's reference and on_delete", got)
		}
		paths := mustAdmin(t, a, 200, "GET", "/endpoints", "")["data"].([]any)
		for _, p := range []string{"/widgets/{widgets}", "/services/{services}/widgets/{widgets}", "/widgets/{widgets}/service"} {
			if !slices.Contains(paths, any(p)) {
				t.Errorf("got endpoints %v, want %s among them", paths, p)
			}
		}
	})

	t.Run("second node loads it by hint", func(t *testing.T) {
		eventually(t, 3*time.Second, sameHash(before))
	})

	t.Run("stored with cluster_events", func(t *testing.T) {
		var ops []string
		for _, ev := range readEvents(t, dsn) {
			if ev.Table == "widgets" {
				ops = append(ops, ev.Op)
			}
		}
		want := []string{"create", "update", "create", "delete"}
		if !slices.Equal(ops, want) {
			t.Errorf("got widgets events %v, want %v", ops, want)
		}
	})

	t.Run("restrict wins over cascade", func(t *testing.T) {
		mustAdmin(t, a, 201, "POST", "/services/s/routes", `{"name":"r","paths":["/r"]}`)
		mustAdmin(t, a, 400, "DELETE", "/services/s", "")
		mustAdmin(t, a, 200, "GET", "/widgets/w1", "") // the cascade rolled back
		mustAdmin(t, a, 204, "DELETE", "/routes/r", "")
	})

	t.Run("cascade", func(t *testing.T) {
		loaded := a.ConfigHash()
		eventually(t, 3*time.Second, sameHash(before))
		mustAdmin(t, a, 204, "DELETE", "/services/s", "")
		mustAdmin(t, b, 404, "GET", "/widgets/w1", "")
		events := readEvents(t, dsn)
		last := events[len(events)-2:]
		if last[0].Table != "widgets" || last[0].Op != "delete" || last[1].Table != "services" || last[1].Op != "delete" {
			t.Errorf("got last events %+v, want the widget's delete, then the service's", last)
		}
		eventually(t, 3*time.Second, sameHash(loaded))
	})
}

func readEvents(t *testing.T, dsn string) []store.Event {
	t.Helper()
	st := openWriter(t, dsn)
	events, err := st.EventsSince(context.Background(), 0, 0)
	if err != nil {
		t.Fatalf("read events: %v", err)
	}
	return events
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
