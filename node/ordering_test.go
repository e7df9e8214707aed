package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/store"
)

// serviceAndRoute writes a service pointing at upstreamURL and a route for
// path inside tx, as the Admin API would store them.
func serviceAndRoute(ctx context.Context, tx *store.Tx, upstreamURL, path string) error {
	u, _ := url.Parse(upstreamURL)
	port, _ := strconv.Atoi(u.Port())
	svc := entity.Service{ID: uuid.NewString(), Protocol: "http", Host: u.Hostname(), Port: port, Retries: 5,
		ConnectTimeout: 60000, ReadTimeout: 60000, WriteTimeout: 60000, Enabled: true}
	route := entity.Route{ID: uuid.NewString(), Protocols: []string{"http"}, Paths: []string{path}, StripPath: true,
		PathHandling: "v0", HTTPSRedirectStatusCode: 426, Service: &entity.ForeignKey{ID: svc.ID}}
	svcDoc, _ := json.Marshal(svc)
	routeDoc, _ := json.Marshal(route)
	if _, err := tx.Insert(ctx, store.Services, store.Row{ID: svc.ID, Doc: svcDoc}); err != nil {
		return err
	}
	_, err := tx.Insert(ctx, store.Routes, store.Row{ID: route.ID, Foreign: map[string]string{"service": svc.ID}, Doc: routeDoc})
	return err
}

// openWriter opens a store of its own on dsn, as another node would write
// through it; closed at cleanup.
func openWriter(t *testing.T, dsn string) *store.Store {
	t.Helper()
	writer, err := store.Open(context.Background(), store.Config{DSN: dsn, NodeID: "writer"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(writer.Close)
	return writer
}

// A transaction that took its event ids first but commits last must still
// reach a node that learns of changes by polling alone: a watermark on the
// highest id seen would skip it for good.
func TestPollingAppliesEventsThatCommitOutOfOrder(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	cfg := testConfig(t, dsn)
	cfg.DBUpdateFrequency = 200 * time.Millisecond
	poller := startNode(t, cfg)
	up := newUpstream(t)
	ctx := context.Background()
	writer := openWriter(t, dsn)

	inserted, release, committed := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := writer.InTx(ctx, func(tx *store.Tx) error {
			if err := serviceAndRoute(ctx, tx, up.URL, "/early-id-late-commit"); err != nil {
				return err
			}
			close(inserted)
			<-release
			return nil
		})
		committed <- err
	}()
	<-inserted
	changes, err := writer.InTx(ctx, func(tx *store.Tx) error { return serviceAndRoute(ctx, tx, up.URL, "/late-id-early-commit") })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second transaction committed events %d and %d first", changes[0].EventID, changes[1].EventID)

	eventually(t, 3*time.Second, func() error { return serves(t, poller, "/late-id-early-commit") })
	if err := notServes(t, poller, "/early-id-late-commit"); err != nil {
		t.Fatalf("before the first transaction commits: %v", err)
	}
	close(release)
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	eventually(t, cfg.DBUpdateFrequency+time.Second, func() error {
		if err := serves(t, poller, "/early-id-late-commit"); err != nil {
			return fmt.Errorf("the late commit of lower event ids was missed: %w", err)
		}
		return nil
	})
}

// db_update_propagation holds polled events back until they are that old,
// as Kong does for databases that replicate late.
func TestPollingWaitsForDBUpdatePropagation(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	writer := startNode(t, testConfig(t, dsn))
	cfg := testConfig(t, dsn)
	cfg.DBUpdateFrequency = 100 * time.Millisecond
	cfg.DBUpdatePropagation = 1500 * time.Millisecond
	reader := startNode(t, cfg)
	up := newUpstream(t)
	mustAdmin(t, writer, 201, "POST", "/services", `{"name":"s","url":"`+up.URL+`"}`)
	mustAdmin(t, writer, 201, "POST", "/services/s/routes", `{"paths":["/settled"]}`)
	written := time.Now()
	time.Sleep(500 * time.Millisecond) // several polls, all before the events are old enough
	if time.Since(written) < cfg.DBUpdatePropagation {
		if err := notServes(t, reader, "/settled"); err != nil {
			t.Fatalf("before db_update_propagation passed: %v", err)
		}
	}
	eventually(t, cfg.DBUpdatePropagation+2*time.Second, func() error { return serves(t, reader, "/settled") })
}

// Events are purged after an hour; a node that could not poll for long may
// find the ones it missed gone, so after a long gap a poll reloads
// everything instead of trusting the event log.
func TestPollingAfterALongGapReloadsEverything(t *testing.T) {
	dsn := bootstrappedDatabase(t)
	cfg := testConfig(t, dsn)
	cfg.DBUpdateFrequency = 200 * time.Millisecond
	// Polls never apply the event itself: it is purged before it is old enough.
	cfg.DBUpdatePropagation = time.Minute
	// Every poll comes after a longer gap than this, so each one reloads.
	poller := startClusterNode(t, cfg, TestHooks{PollGapLimit: 100 * time.Millisecond})
	up := newUpstream(t)
	ctx := context.Background()
	writer := openWriter(t, dsn)
	if _, err := writer.InTx(ctx, func(tx *store.Tx) error { return serviceAndRoute(ctx, tx, up.URL, "/events-purged") }); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.PurgeEvents(ctx, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, func() error { return serves(t, poller, "/events-purged") })
}
