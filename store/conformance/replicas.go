package conformance

import (
	"context"
	"testing"
	"time"
)

func testJobLockAdmitsOneReplicaAtATime(t *testing.T, b Backend) {
	dsn := b.DSN(t)
	a := b.Open(t, dsn)
	other := a
	if b.Name == "postgres" {
		other = b.Open(t, dsn)
	}
	ctx := context.Background()
	var innerRan bool
	ran, err := a.WithJobLock(ctx, 42, func(ctx context.Context) error {
		var err error
		innerRan, err = other.WithJobLock(ctx, 42, func(context.Context) error { return nil })
		return err
	})
	if err != nil || !ran {
		t.Fatalf("outer job: ran=%v err=%v", ran, err)
	}
	if b.Name == "postgres" && innerRan {
		t.Fatal("a second replica ran the job while the first held the lock")
	}
	if b.Name == "sqlite" && !innerRan {
		t.Fatal("SQLite has one process: the job always runs")
	}
}

func testNotifyReachesListeners(t *testing.T, b Backend) {
	if b.Name != "postgres" {
		// One process owns a SQLite file: Notify has no one to reach and succeeds doing
		// nothing, and Listen only waits for its context.
		s := b.Open(t, b.DSN(t))
		ctx, cancel := context.WithCancel(context.Background())
		if err := s.Notify(ctx, "hookrelay_test_chan", "hello"); err != nil {
			t.Fatalf("Notify on SQLite: %v", err)
		}
		called := make(chan string, 1)
		returned := make(chan struct{})
		go func() { s.Listen(ctx, "hookrelay_test_chan", func(p string) { called <- p }); close(returned) }()
		cancel()
		select {
		case <-returned:
		case <-time.After(10 * time.Second):
			t.Fatal("Listen did not return when its context ended")
		}
		if len(called) != 0 {
			t.Errorf("Listen on SQLite called back with %q", <-called)
		}
		return
	}
	dsn := b.DSN(t)
	a, other := b.Open(t, dsn), b.Open(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 16)
	go other.Listen(ctx, "hookrelay_test_chan", func(p string) { got <- p })
	if p := <-got; p != "" {
		t.Fatalf("first callback should be the empty catch-up wake, got %q", p)
	}
	if err := a.Notify(ctx, "hookrelay_test_chan", "hello"); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != "hello" {
			t.Fatalf("payload %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("notification not received")
	}
}
