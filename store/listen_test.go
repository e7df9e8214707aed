package store

import (
	"context"
	"testing"
	"time"
)

// TestListenReloads: a committed import notifies its event id to a
// listening connection; a failed one, rolled back, notifies nothing.
func TestListenReloads(t *testing.T) {
	s := bootstrapped(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	got := make(chan int64, 4)
	done := make(chan error, 1)
	go func() { done <- s.ListenReloads(ctx, func() { close(ready) }, func(id int64) { got <- id }) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("listen: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not listening after 10s")
	}

	mustInsert(t, s, Services, serviceRow("taken"))
	if _, err := s.UpsertAll(ctx, []TableRows{{Services, []Row{serviceRow("fresh"), serviceRow("taken")}}}); err == nil {
		t.Fatal("got no error importing a name in use, want one")
	}
	c, err := s.UpsertAll(ctx, []TableRows{{Services, []Row{serviceRow("imported")}}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != c.EventID {
			t.Errorf("got event %d notified first, want %d (the committed import's; the failed one notifies nothing)", id, c.EventID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification 10s after the import committed")
	}
}
