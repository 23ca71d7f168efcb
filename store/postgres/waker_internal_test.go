package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store/storedriver"
)

// The publishes that commit while a notification goes out share the next one, and closing
// sends what is still queued.
func TestWakerSharesANotificationAmongThePublishesThatWaitedForIt(t *testing.T) {
	sent := make(chan string)
	release := make(chan struct{})
	w := newWaker("me", func(ctx context.Context, channel, payload string) error {
		if channel != storedriver.ChannelWake {
			t.Errorf("notified on %q", channel)
		}
		sender, ids := wakeFrom(payload)
		if sender != "me" {
			t.Errorf("notification %q names %q as its sender, want me", payload, sender)
		}
		sent <- ids
		<-release
		return nil
	})
	w.add(map[string]int64{"wh_a": 1}, nil)
	if got := receive(t, sent); got != "wh_a" {
		t.Fatalf("first notification %q, want wh_a", got)
	}
	// While that one is out, three publishes commit.
	w.add(map[string]int64{"wh_b": 2}, nil)
	w.add(map[string]int64{"wh_c": 3, "wh_b": 1}, nil)
	w.add(map[string]int64{"wh_a": 4}, nil)
	release <- struct{}{}
	got := strings.Split(receive(t, sent), ",")
	slices.Sort(got)
	if !slices.Equal(got, []string{"wh_a", "wh_b", "wh_c"}) {
		t.Fatalf("second notification names %q, want wh_a, wh_b and wh_c in one", got)
	}
	// A publish that commits before Close is announced by it.
	w.add(map[string]int64{"wh_d": 5}, nil)
	closed := make(chan struct{})
	go func() { w.close(); close(closed) }()
	release <- struct{}{}
	if got := receive(t, sent); got != "wh_d" {
		t.Fatalf("notification at close %q, want wh_d", got)
	}
	release <- struct{}{}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return")
	}
	select {
	case p := <-sent:
		t.Fatalf("a notification after close: %q", p)
	default:
	}
}

// Webhooks owed events only (every spilled webhook, at every publish) are announced at most
// once per owedEvery: those owed since the last such notification wait for the next webhook
// with rows, or for their turn, and none is lost.
func TestWakerAnnouncesWebhooksOwedEventsOnlyOncePerInterval(t *testing.T) {
	var sent []string
	w := makeWaker("me", func(ctx context.Context, channel, payload string) error {
		_, ids := wakeFrom(payload)
		got := strings.Split(ids, ",")
		slices.Sort(got)
		sent = append(sent, strings.Join(got, ","))
		return nil
	})
	w.owedEvery = time.Hour
	expect := func(step string, wantWait bool, want ...string) {
		t.Helper()
		wait := w.send(false)
		if (wait > 0) != wantWait {
			t.Errorf("%s: send returned a wait of %v", step, wait)
		}
		if !slices.Equal(sent, want) {
			t.Fatalf("%s: notifications %q, want %q", step, sent, want)
		}
		sent = nil
	}
	w.add(map[string]int64{"wh_x": 1}, map[string]bool{"wh_x": true})
	expect("the first owed webhook", false, "wh_x")
	w.add(map[string]int64{"wh_y": 2, "wh_x": 2}, map[string]bool{"wh_y": true, "wh_x": true})
	expect("owed webhooks within the interval", true)
	w.add(map[string]int64{"wh_r": 3, "wh_x": 3}, map[string]bool{"wh_x": true})
	expect("a webhook with rows", false, "wh_r,wh_x,wh_y")
	w.add(map[string]int64{"wh_z": 4}, map[string]bool{"wh_z": true})
	expect("owed again within the interval", true)
	if wait := w.send(true); wait != 0 || !slices.Equal(sent, []string{"wh_z"}) {
		t.Fatalf("closing sent %q (wait %v), want wh_z", sent, wait)
	}
	sent = nil
	expect("nothing queued", false)

	// Running, the waker sends the owed webhooks that waited when their interval ends.
	notified := make(chan string, 10)
	live := newWaker("me", func(ctx context.Context, channel, payload string) error {
		_, ids := wakeFrom(payload)
		notified <- ids
		return nil
	})
	defer live.close()
	live.add(map[string]int64{"wh_a": 1}, map[string]bool{"wh_a": true})
	if got := receive(t, notified); got != "wh_a" {
		t.Fatalf("first notification %q, want wh_a", got)
	}
	live.add(map[string]int64{"wh_b": 1}, map[string]bool{"wh_b": true})
	if got := receive(t, notified); got != "wh_b" {
		t.Fatalf("second notification %q, want wh_b", got)
	}
}

func receive(t *testing.T, sent chan string) string {
	t.Helper()
	select {
	case p := <-sent:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
		return ""
	}
}

// Publishes committing from many goroutines while notifications go out are all announced,
// none lost between one notification and the next. (400 short ids fit in one notification
// even if they all share it, so none may be announced by the look-everywhere "".)
func TestWakerAnnouncesEveryPublishUnderConcurrentCommits(t *testing.T) {
	var mu sync.Mutex
	heard := map[string]bool{}
	w := newWaker("me", func(ctx context.Context, channel, payload string) error {
		mu.Lock()
		defer mu.Unlock()
		sender, ids := wakeFrom(payload)
		if sender != "me" || ids == "" {
			t.Errorf("notification %q: want it sent by me, naming ids that fit in one", payload)
		}
		for _, id := range strings.Split(ids, ",") {
			heard[id] = true
		}
		return nil
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				w.add(map[string]int64{fmt.Sprintf("wh_%d_%d", g, i): int64(i)}, nil)
			}
		}()
	}
	wg.Wait()
	w.close()
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != 8*50 {
		t.Fatalf("%d webhooks announced, want %d", len(heard), 8*50)
	}
}
