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
		t.Skip("one process: there are no other replicas to notify")
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
