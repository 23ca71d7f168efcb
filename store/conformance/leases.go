package conformance

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/wait"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// grantingLessee grants what grant says, records what it is asked and handed, and can fail
// the publish it is asked by (cancel).
type grantingLessee struct {
	grant  map[string]int
	owner  string
	until  int64
	cancel context.CancelFunc // called from Reserve when set: the publish then fails

	mu       sync.Mutex
	asked    []map[string]int
	leased   []*models.Delivery
	released []map[string]int
	order    []string // "queued", "leased" as they were told
}

func (l *grantingLessee) Reserve(want map[string]int, _ time.Time) (map[string]int, string, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked = append(l.asked, want)
	if l.cancel != nil {
		l.cancel()
	}
	return l.grant, l.owner, l.until
}

func (l *grantingLessee) Leased(ds []*models.Delivery) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leased = append(l.leased, ds...)
	l.order = append(l.order, "leased")
}

func (l *grantingLessee) Release(granted map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released = append(l.released, granted)
}

// messagesReceived is n message.received events to publish in one batch.
func messagesReceived(n int) []store.PublishInput {
	et, _ := models.LookupEventType("message.received")
	at := time.Now().UTC().Truncate(time.Second)
	in := make([]store.PublishInput, n)
	for i := range in {
		in[i] = store.PublishInput{Type: et.Name, Payload: et.Example(at), OccurredAt: at}
	}
	return in
}

// A publish offers its new deliveries to the lessee and writes the ones granted, in publish
// order, leased to it: no claim takes them until the lease runs out, and they are handed over
// after the commit rather than announced as due; once the lease runs out, the rescan finds
// them and a claim takes them. A publish that fails gives its grant back. A driver that does
// not lease at publish never asks.
func testPublishLeasesWhatTheLesseeGrants(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	a := NewWebhook(t, s, "message.received", true)
	other := NewWebhook(t, s, "message.received", true)
	now := time.Now()
	l := &grantingLessee{grant: map[string]int{a.ID: 2}, owner: "proc_lessee", until: now.Add(time.Minute).UnixMilli()}
	var due []map[string]int64
	s.OnQueued(func(q store.Queued) {
		l.mu.Lock()
		defer l.mu.Unlock()
		due = append(due, q.Due)
		l.order = append(l.order, "queued")
	})
	t.Cleanup(func() { s.LeaseAtPublish(nil) })
	if !s.LeaseAtPublish(l) {
		if b.Name == "postgres" || b.Name == "sqlite" {
			t.Fatalf("%s writes leases in the rows: it should lease at publish", b.Name)
		}
		Publish(t, s, "message.received", "")
		if len(l.asked) != 0 || len(l.leased) != 0 {
			t.Errorf("a driver that does not lease at publish asked %v and handed %d deliveries", l.asked, len(l.leased))
		}
		return
	}

	in := messagesReceived(3)
	res, err := s.Publish(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.asked) != 1 || l.asked[0][a.ID] != 3 || l.asked[0][other.ID] != 3 {
		t.Fatalf("lessee asked %v, want once for 3 deliveries of each webhook", l.asked)
	}
	if len(l.leased) != 2 || l.leased[0].EventID != res[0].Event.ID || l.leased[1].EventID != res[1].Event.ID {
		t.Fatalf("handed %d deliveries, want the first 2 events' deliveries to %s", len(l.leased), a.ID)
	}
	for _, d := range l.leased {
		if d.WebhookID != a.ID || d.LockedBy != l.owner || d.LockedUntil != l.until || d.Status != models.StatusPending {
			t.Errorf("handed %+v, want a pending delivery to %s leased to %s until %d", d, a.ID, l.owner, l.until)
		}
	}
	if len(l.order) != 2 || l.order[0] != "queued" || l.order[1] != "leased" {
		t.Errorf("told %v, want the commit's Queued before the hand-over (the bodies come with it)", l.order)
	}
	if len(due) != 1 || due[0][other.ID] == 0 || due[0][a.ID] == 0 {
		t.Errorf("Queued.Due %v, want both webhooks: each has deliveries no one leased", due)
	}
	var rows []struct {
		EventID     string
		LockedBy    string
		LockedUntil int64
	}
	if err := s.ScanSQL(ctx, &rows, `SELECT event_id, locked_by, locked_until FROM deliveries WHERE webhook_id = ? ORDER BY event_id`, a.ID); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].LockedBy != l.owner || rows[0].LockedUntil != l.until ||
		rows[1].LockedBy != l.owner || rows[2].LockedBy != "" || rows[2].LockedUntil != 0 {
		t.Errorf("stored leases %+v, want the first two events' rows leased and the third free", rows)
	}
	// Another claimant gets only what was not leased, until the lease runs out.
	got, _ := ClaimFor(t, s, time.Now(), store.WebhookQuota{WebhookID: a.ID, Free: 10})
	if len(got) != 1 || got[0].EventID != res[2].Event.ID {
		t.Errorf("a claim took %d deliveries, want only the third event's", len(got))
	}
	if later, _ := ClaimFor(t, s, time.Now().Add(2*time.Minute), store.WebhookQuota{WebhookID: a.ID, Free: 10}); len(later) != 3 {
		t.Errorf("after the leases ran out a claim took %d, want 3", len(later))
	}

	// A publish that fails after the grant gives it back and hands nothing over.
	failing, cancel := context.WithCancel(ctx)
	l.cancel = cancel
	if _, err := s.Publish(failing, in[:1]); err == nil {
		t.Fatal("a publish whose context was cancelled mid-transaction succeeded")
	}
	if len(l.released) != 1 || l.released[0][a.ID] != 2 || len(l.leased) != 2 {
		t.Errorf("after a failed publish released %v and handed %d in all, want the grant back and nothing more handed", l.released, len(l.leased))
	}
	l.cancel = nil

	// Everything leased, nothing else due: a claim passes over the leased rows, and a rescan
	// does not count them, until their lease runs out; then the rescan finds them and a claim
	// takes them. The lease is long enough that a slow machine still claims and rescans
	// within it.
	b2 := NewWebhook(t, s, "conversation.started", true)
	l.grant = map[string]int{b2.ID: 2}
	l.until = time.Now().Add(5 * time.Second).UnixMilli()
	var leased2 []string
	for range 2 {
		p := Publish(t, s, "conversation.started", "")
		leased2 = append(leased2, p.Deliveries[0].ID)
	}
	if got, _ := ClaimFor(t, s, time.Now(), store.WebhookQuota{WebhookID: b2.ID, Free: 10}); len(got) != 0 {
		t.Errorf("a claim took %d deliveries leased at publish", len(got))
	}
	pending, err := s.PendingByWebhook(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pending[b2.ID]; ok {
		t.Errorf("a rescan counted deliveries whose lease holds: %v", pending)
	}
	wait.Until(t, "the leases of deliveries never recorded run out and a rescan finds them", func() bool {
		pending, err := s.PendingByWebhook(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := pending[b2.ID]
		return ok
	})
	got, _ = ClaimFor(t, s, time.Now(), store.WebhookQuota{WebhookID: b2.ID, Free: 10})
	var claimedIDs []string
	for _, d := range got {
		claimedIDs = append(claimedIDs, d.ID)
	}
	slices.Sort(claimedIDs)
	slices.Sort(leased2)
	if !slices.Equal(claimedIDs, leased2) {
		t.Errorf("after the leases ran out a claim took %v, want %v", claimedIDs, leased2)
	}

	// Without a lessee, nothing is asked.
	s.LeaseAtPublish(nil)
	asked := len(l.asked)
	Publish(t, s, "message.received", "")
	if len(l.asked) != asked {
		t.Error("a publish asked a lessee that was taken away")
	}
}

// A spilled webhook is offered its new deliveries too: what the lessee grants it (the engine
// grants only a webhook that has caught up) is written as leased rows, in publish order, and
// only the rest is owed, to be taken as before. A driver that does not lease at publish owes
// them all, and so does SQLite: its spill owes every event after a position, so a leased row
// there would be taken again.
func testPublishLeasesASpilledWebhookWhatTheLesseeGrants(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	w, before := SpilledWith(t, s, 1)
	l := &grantingLessee{grant: map[string]int{w.ID: 2}, owner: "proc_lessee", until: time.Now().Add(time.Minute).UnixMilli()}
	t.Cleanup(func() { s.LeaseAtPublish(nil) })
	leases := s.LeaseAtPublish(l) && b.Name != "sqlite"

	res, err := s.Publish(ctx, messagesReceived(3))
	if err != nil {
		t.Fatal(err)
	}
	owed := append(before, res[0].Event.ID, res[1].Event.ID, res[2].Event.ID)
	if leases {
		if len(l.asked) != 1 || l.asked[0][w.ID] != 3 {
			t.Fatalf("lessee asked %v, want once for the spilled webhook's 3 deliveries", l.asked)
		}
		if len(l.leased) != 2 || l.leased[0].EventID != res[0].Event.ID || l.leased[1].EventID != res[1].Event.ID {
			t.Fatalf("handed %d deliveries, want the first 2 events'", len(l.leased))
		}
		for i, r := range res {
			if got, want := len(r.Deliveries), map[bool]int{true: 1, false: 0}[i < 2]; got != want || got == 1 && r.Deliveries[0].WebhookID != w.ID {
				t.Errorf("event %d lists %d deliveries, want %d: a leased delivery has its row", i, got, want)
			}
		}
		var rows []struct {
			EventID  string
			LockedBy string
		}
		if err := s.ScanSQL(ctx, &rows, `SELECT event_id, locked_by FROM deliveries WHERE webhook_id = ? ORDER BY event_id`, w.ID); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[0].EventID != res[0].Event.ID || rows[1].EventID != res[1].Event.ID ||
			rows[0].LockedBy != l.owner || rows[1].LockedBy != l.owner {
			t.Fatalf("rows of the spilled webhook %+v, want the first two events' leased to %s", rows, l.owner)
		}
		owed = append(before, res[2].Event.ID)
	} else if len(l.asked) != 0 {
		t.Errorf("a driver that does not lease at publish asked %v", l.asked)
	}
	if st := QueueStats(t, s); st.Spilled != 1 || st.Owed != int64(len(owed)) {
		t.Errorf("queue stats %+v, want the webhook spilled, owing %d events", st, len(owed))
	}
	tk := TakeOnly(t, s, w.ID, 10)
	var took []string
	for _, d := range tk.Taken {
		took = append(took, d.EventID)
	}
	if !slices.Equal(took, owed) || !tk.Spilled {
		t.Errorf("a take got %v (spilled: %v), want only the owed %v in order", took, tk.Spilled, owed)
	}
}
