package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/conformance"
	"github.com/hookrelay/hookrelay/store/sqlite"
)

func TestQueuedIsToldWhatAPublishQueued(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	var mu sync.Mutex
	var got []store.Queued
	s.OnQueued(func(q store.Queued) {
		mu.Lock()
		got = append(got, q)
		mu.Unlock()
	})
	a := conformance.NewWebhook(t, s, "message.received", true)
	b := conformance.NewWebhook(t, s, "message.received", true)
	conformance.NewWebhook(t, s, "conversation.started", true)
	p := conformance.Publish(t, s, "message.received", "")
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("told %d times about one publish, want once", len(got))
	}
	q := got[0]
	if len(q.Due) != 2 || q.Due[a.ID] == 0 || q.Due[b.ID] == 0 {
		t.Errorf("Due = %v, want the two subscribed webhooks", q.Due)
	}
	if b := q.Payloads[p.Event.ID]; string(b.Payload) != string(p.Event.Payload) || b.Deliveries != p.Event.DeliveryCount {
		t.Errorf("Payloads = %v, want the event's body", q.Payloads)
	}
}

func TestSubscriberCacheSeesEveryWebhookChange(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteDSN(t))
	ctx := context.Background()
	fanout := func() int {
		t.Helper()
		return len(conformance.Publish(t, s, "message.received", "").Deliveries)
	}
	a := conformance.NewWebhook(t, s, "message.received", true)
	if n := fanout(); n != 1 {
		t.Fatalf("fan-out %d, want 1", n)
	}
	b := conformance.NewWebhook(t, s, "message.received", true)
	if n := fanout(); n != 2 {
		t.Fatalf("after a create, fan-out %d, want 2", n)
	}
	if err := s.DisableWebhook(ctx, a.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if n := fanout(); n != 1 {
		t.Fatalf("after a disable, fan-out %d, want 1", n)
	}
	if _, err := s.ModifyWebhook(ctx, b.ID, func(w *models.Webhook) error { w.Events = "conversation.started"; return nil }); err != nil {
		t.Fatal(err)
	}
	if n := fanout(); n != 0 {
		t.Fatalf("after unsubscribing, fan-out %d, want 0", n)
	}
	if _, err := s.ModifyWebhook(ctx, a.ID, func(w *models.Webhook) error { w.Enabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhook(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if n := fanout(); n != 0 {
		t.Fatalf("after a delete, fan-out %d, want 0", n)
	}
}

// A new SQLite file is created with 8 KiB pages in WAL mode; a file made with 4 KiB pages
// (every file before this setting) opens, migrates and works with its own page size.
func TestSQLiteFilesGetLargePagesAndOldOnesKeepTheirs(t *testing.T) {
	pragma := func(s *store.Store, name string) string {
		t.Helper()
		var v string
		if err := s.ScanSQL(context.Background(), &v, "PRAGMA "+name); err != nil {
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
	conformance.NewWebhook(t, old, "message.received", true)
	if res := conformance.Publish(t, old, "message.received", ""); len(res.Deliveries) != 1 {
		t.Errorf("publish on the 4 KiB file made %d deliveries, want 1", len(res.Deliveries))
	}
}

func TestTheDatabaseFileIsPrivateAndServesOneProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hookrelay.db")
	first, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("database file mode %v, want 0600: it holds secrets and captures", mode)
	}
	// A second opener (another process, or this one by mistake) is refused in one line.
	if second, err := sqlite.Open(t.Context(), path); err == nil {
		second.Close()
		t.Fatal("a second Open of the same file succeeded")
	} else if !strings.Contains(err.Error(), "in use by another Hookrelay process") || strings.Contains(err.Error(), "\n") {
		t.Errorf("second Open: %q, want one line saying the file is in use", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("open after the first closed: %v", err)
	}
	again.Close()
}

// A publish with an Idempotency-Key finds the event published with that key before through
// the key's index (which holds only the events that carry a key), not by reading the table.
func TestAnIdempotencyKeyIsLookedUpByItsIndex(t *testing.T) {
	d, err := sqlite.Open(context.Background(), storetest.SQLiteDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	var plan []struct{ Detail string }
	if err := d.Writer.Raw(`EXPLAIN QUERY PLAN SELECT * FROM events WHERE idempotency_key = ? LIMIT 1`, "key-1").Scan(&plan).Error; err != nil {
		t.Fatal(err)
	}
	if len(plan) != 1 || !strings.Contains(plan[0].Detail, "USING INDEX events_idempotency_key") {
		t.Errorf("an Idempotency-Key is not looked up by its index: %+v", plan)
	}
}
