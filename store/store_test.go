package store_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

func newWebhook(t *testing.T, s *store.Store, events string, enabled bool) *models.Webhook {
	t.Helper()
	w := &models.Webhook{Name: "w", URL: "https://example.com/h", Events: events, Enabled: enabled, Secret: "s"}
	if err := s.CreateWebhook(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	return w
}

func publish(t *testing.T, s *store.Store, eventType, key string) store.Published {
	t.Helper()
	et, _ := models.LookupEventType(eventType)
	now := time.Now().UTC().Truncate(time.Second)
	res, err := s.Publish(context.Background(), []store.PublishInput{{Type: et.Name, Payload: et.Example(now),
		OccurredAt: now, IdempotencyKey: key, RequestHash: "h1"}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

func TestMigrationsApplyOnceAndReopen(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		dsn := b.DSN(t)
		s1 := storetest.Open(t, dsn)
		newWebhook(t, s1, "message.received", true)
		s2 := storetest.Open(t, dsn) // second open (another replica or a restart) migrates nothing
		list, _, err := s2.ListWebhooks(context.Background(), models.Page{Limit: 10})
		if err != nil || len(list) != 1 {
			t.Fatalf("after reopen: %d webhooks, err %v", len(list), err)
		}
	})
}

func TestPublishFansOutToEnabledSubscribersOnly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		both := newWebhook(t, s, "conversation.started,message.received", true)
		msgs := newWebhook(t, s, "message.received", true)
		newWebhook(t, s, "message.received", false) // disabled: no delivery
		newWebhook(t, s, "conversation.started", true)

		p := publish(t, s, "message.received", "")
		got := map[string]bool{}
		for _, d := range p.Deliveries {
			got[d.WebhookID] = true
			if d.Status != models.StatusPending {
				t.Errorf("new delivery status %s", d.Status)
			}
		}
		if len(got) != 2 || !got[both.ID] || !got[msgs.ID] {
			t.Fatalf("deliveries to %v, want exactly %s and %s", got, both.ID, msgs.ID)
		}
		ev, err := s.GetEvent(context.Background(), p.Event.ID)
		if err != nil || ev.DeliveryCount != 2 || string(ev.Payload) != string(p.Event.Payload) {
			t.Fatalf("stored event %+v err %v", ev, err)
		}
	})
}

func TestIdempotencyKeyReplaysAndRefusesOtherContent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		newWebhook(t, s, "message.received", true)
		first := publish(t, s, "message.received", "key-1")
		again := publish(t, s, "message.received", "key-1")
		if !again.Replayed || again.Event.ID != first.Event.ID || len(again.Deliveries) != 1 {
			t.Fatalf("replay: %+v", again)
		}
		et, _ := models.LookupEventType("message.received")
		_, err := s.Publish(context.Background(), []store.PublishInput{{Type: et.Name, Payload: et.Example(time.Now()),
			OccurredAt: time.Now(), IdempotencyKey: "key-1", RequestHash: "other"}})
		if !errors.Is(err, models.ErrConflict) {
			t.Fatalf("reuse with other content: err %v, want ErrConflict", err)
		}
		ds, _, _ := s.ListDeliveries(context.Background(), store.DeliveryFilter{}, models.Page{Limit: 10})
		if len(ds) != 1 {
			t.Fatalf("%d deliveries after replays, want 1", len(ds))
		}
	})
}

func TestRecordResultsDoesNotReviveCancelledDelivery(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		ctx := context.Background()
		w := newWebhook(t, s, "message.received", true)
		publish(t, s, "message.received", "")
		got, _ := claimFor(t, s, time.Now(), store.HookSlots{WebhookID: w.ID, Free: 10})
		if len(got) != 1 {
			t.Fatalf("claimed %d", len(got))
		}
		// Disabled while the attempt was in flight.
		if err := s.DisableWebhook(ctx, w.ID, "test"); err != nil {
			t.Fatal(err)
		}
		status := 500
		errText := "HTTP 500"
		err := s.RecordResults(ctx, []models.Result{{DeliveryID: got[0].ID, WebhookID: w.ID, Status: models.StatusPending,
			NextAttemptAt: time.Now().Add(time.Minute).UnixMilli(),
			Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: got[0].ID, WebhookID: w.ID, Number: 1,
				StartedAt: time.Now().UTC(), ResponseStatus: &status, Error: &errText, Outcome: models.OutcomeFailed}}})
		if err != nil {
			t.Fatal(err)
		}
		d, _ := s.GetDelivery(ctx, got[0].ID)
		if d.Status != models.StatusCancelled {
			t.Fatalf("status %s, want cancelled", d.Status)
		}
		attempts, _ := s.ListAttempts(ctx, d.ID)
		if len(attempts) != 1 {
			t.Fatalf("attempt not logged: %d", len(attempts))
		}
		wh, _ := s.GetWebhook(ctx, w.ID)
		if wh.FailingSince == nil {
			t.Fatal("failing_since not set after a failed attempt")
		}
	})
}

func TestDeleteWebhookRemovesDeliveriesAndAttempts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		ctx := context.Background()
		w := newWebhook(t, s, "message.received", true)
		keep := newWebhook(t, s, "message.received", true)
		publish(t, s, "message.received", "")
		if err := s.DeleteWebhook(ctx, w.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteWebhook(ctx, w.ID); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		ds, _, _ := s.ListDeliveries(ctx, store.DeliveryFilter{}, models.Page{Limit: 10})
		if len(ds) != 1 || ds[0].WebhookID != keep.ID {
			t.Fatalf("deliveries left: %+v", ds)
		}
	})
}

func TestPruneKeepsPendingWork(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := storetest.Open(t, b.DSN(t))
		ctx := context.Background()
		w := newWebhook(t, s, "message.received", true)
		p := publish(t, s, "message.received", "")
		if _, err := s.Prune(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetDelivery(ctx, p.Deliveries[0].ID); err != nil {
			t.Fatalf("pending delivery pruned: %v", err)
		}
		if _, err := s.GetEvent(ctx, p.Event.ID); err != nil {
			t.Fatalf("event of a pending delivery pruned: %v", err)
		}
		// A failed attempt of a delivery still retrying stays with it.
		got, _ := claimFor(t, s, time.Now(), store.HookSlots{WebhookID: w.ID, Free: 10})
		err := s.RecordResults(ctx, []models.Result{{DeliveryID: got[0].ID, WebhookID: got[0].WebhookID, Status: models.StatusPending,
			NextAttemptAt: time.Now().UnixMilli(), Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: got[0].ID,
				WebhookID: got[0].WebhookID, Number: 1, StartedAt: time.Now().UTC(), Outcome: models.OutcomeFailed}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Prune(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if a, err := s.ListAttempts(ctx, got[0].ID); err != nil || len(a) != 1 {
			t.Fatalf("attempts of a retrying delivery after pruning past them: %d, %v; want its 1", len(a), err)
		}
		// Finished work older than the cutoff goes.
		got, _ = claimFor(t, s, time.Now(), store.HookSlots{WebhookID: w.ID, Free: 10})
		err = s.RecordResults(ctx, []models.Result{{DeliveryID: got[0].ID, WebhookID: got[0].WebhookID, Status: models.StatusSucceeded,
			Succeeded: true, Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: got[0].ID, WebhookID: got[0].WebhookID,
				Number: 1, StartedAt: time.Now().UTC(), Outcome: models.OutcomeSucceeded}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Prune(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetEvent(ctx, p.Event.ID); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("finished event not pruned: %v", err)
		}
		if a, err := s.ListAttempts(ctx, got[0].ID); err != nil || len(a) != 0 {
			t.Fatalf("attempts of a finished delivery after pruning past it: %d, %v; want none", len(a), err)
		}
	})
}

func TestJobLockAdmitsOneReplicaAtATime(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		dsn := b.DSN(t)
		a := storetest.Open(t, dsn)
		other := a
		if b.Name == "postgres" {
			other = storetest.Open(t, dsn)
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
	})
}

func TestNotifyReachesListeners(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		if b.Name != "postgres" {
			continue
		}
		dsn := b.DSN(t)
		a, other := storetest.Open(t, dsn), storetest.Open(t, dsn)
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
}

func TestConcurrentPublishesWithOneIdempotencyKeyMakeOneEvent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		dsn := b.DSN(t)
		s := storetest.Open(t, dsn)
		newWebhook(t, s, "message.received", true)
		stores := []*store.Store{s}
		if b.Name == "postgres" {
			stores = append(stores, storetest.Open(t, dsn))
		}
		et, _ := models.LookupEventType("message.received")
		now := time.Now().UTC().Truncate(time.Second)
		ids := make(chan string, 8)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := stores[i%len(stores)].Publish(context.Background(), []store.PublishInput{{Type: et.Name,
					Payload: et.Example(now), OccurredAt: now, IdempotencyKey: "same-key", RequestHash: "h"}})
				if err != nil {
					t.Error(err)
					return
				}
				ids <- res[0].Event.ID
			}()
		}
		wg.Wait()
		close(ids)
		distinct := map[string]bool{}
		for id := range ids {
			distinct[id] = true
		}
		if len(distinct) != 1 {
			t.Fatalf("%d distinct events for one Idempotency-Key", len(distinct))
		}
		ds, _, _ := s.ListDeliveries(context.Background(), store.DeliveryFilter{}, models.Page{Limit: 100})
		if len(ds) != 1 {
			t.Fatalf("%d deliveries, want 1", len(ds))
		}
	})
}

// The dispatcher's webhooks come from the publish cache while no webhook changed: a change
// (here a new URL, then disabling) shows in the very next read, cache or not.
func TestWebhooksToSendSeeEveryChange(t *testing.T) {
	for _, be := range storetest.Backends(t) {
		t.Run(be.Name, func(t *testing.T) {
			s := storetest.Open(t, be.DSN(t))
			ctx := context.Background()
			w := newWebhook(t, s, "message.received", true)
			publish(t, s, "message.received", "") // loads the cache on SQLite
			read := func() *models.Webhook {
				t.Helper()
				got, err := s.WebhooksToSend(ctx, []string{w.ID, "wh_missing"})
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := got["wh_missing"]; ok || len(got) != 1 {
					t.Fatalf("got %d webhooks, want only %s", len(got), w.ID)
				}
				return got[w.ID]
			}
			if got := read(); got.URL != w.URL || !got.Enabled {
				t.Fatalf("first read: %+v", got)
			}
			w.URL = "https://example.com/moved"
			if err := s.UpdateWebhook(ctx, w); err != nil {
				t.Fatal(err)
			}
			if got := read(); got.URL != "https://example.com/moved" {
				t.Errorf("after the update: URL %q, want the new one", got.URL)
			}
			publish(t, s, "message.received", "") // the cache again
			if err := s.DisableWebhook(ctx, w.ID, "test"); err != nil {
				t.Fatal(err)
			}
			if got := read(); got.Enabled {
				t.Errorf("after disabling: still enabled")
			}
		})
	}
}

// A new SQLite file is created with 8 KiB pages in WAL mode; a file made with 4 KiB pages
// (every file before this setting) opens, migrates and works with its own page size.
func TestSQLiteFilesGetLargePagesAndOldOnesKeepTheirs(t *testing.T) {
	pragma := func(s *store.Store, name string) string {
		t.Helper()
		var v string
		if err := s.W.Raw("PRAGMA " + name).Row().Scan(&v); err != nil {
			t.Fatalf("PRAGMA %s: %v", name, err)
		}
		return v
	}
	fresh := storetest.Open(t, "sqlite://"+filepath.Join(t.TempDir(), "new.db"))
	if got := pragma(fresh, "page_size"); got != "8192" {
		t.Errorf("a new file has page_size %s, want 8192", got)
	}
	if got := pragma(fresh, "journal_mode"); got != "wal" {
		t.Errorf("a new file has journal_mode %s, want wal", got)
	}

	oldPath := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+oldPath+"?_pragma=page_size(4096)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE before_us (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	old := storetest.Open(t, "sqlite://"+oldPath)
	if got := pragma(old, "page_size"); got != "4096" {
		t.Errorf("an existing 4 KiB file reports page_size %s after opening: it must keep its own", got)
	}
	newWebhook(t, old, "message.received", true)
	if res := publish(t, old, "message.received", ""); len(res.Deliveries) != 1 {
		t.Errorf("publish on the 4 KiB file made %d deliveries, want 1", len(res.Deliveries))
	}
}
