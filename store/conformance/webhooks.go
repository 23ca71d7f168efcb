package conformance

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

func testModifyWebhookSavesOnlyWhatChangeAccepts(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t, b.DSN(t))
	w := NewWebhook(t, s, "message.received", true)
	p := Publish(t, s, "message.received", "")

	if _, err := s.ModifyWebhook(ctx, "wh_missing", func(*models.Webhook) error { return nil }); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("missing webhook: %v", err)
	}
	verr := &models.ValidationError{}
	verr.Add("name", "is required")
	_, err := s.ModifyWebhook(ctx, w.ID, func(w *models.Webhook) error { w.Name = "lost"; return verr })
	var got *models.ValidationError
	if !errors.As(err, &got) {
		t.Fatalf("validation error not passed through: %v", err)
	}
	if cur, _ := s.GetWebhook(ctx, w.ID); cur.Name != "w" {
		t.Fatalf("an aborted change was saved: %q", cur.Name)
	}

	before, _ := s.GetWebhook(ctx, w.ID)
	out, err := s.ModifyWebhook(ctx, w.ID, func(w *models.Webhook) error { w.Name, w.Enabled = "off", false; return nil })
	if err != nil || out.Name != "off" || out.Enabled {
		t.Fatalf("modify: %+v %v", out, err)
	}
	after, _ := s.GetWebhook(ctx, w.ID)
	if after.Name != "off" || after.Enabled || !after.CreatedAt.Equal(before.CreatedAt) || !after.UpdatedAt.After(before.UpdatedAt) {
		t.Fatalf("stored after modify: %+v (before %+v)", after, before)
	}
	d, err := s.GetDelivery(ctx, p.Deliveries[0].ID)
	if err != nil || d.Status != models.StatusCancelled {
		t.Fatalf("pending delivery after disable: %+v %v", d, err)
	}
}

func testDeleteWebhookRemovesDeliveriesAndAttempts(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	keep := NewWebhook(t, s, "message.received", true)
	Publish(t, s, "message.received", "")
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
}

// The dispatcher's webhooks come from the publish cache while no webhook changed: a change
// (here a new URL, then disabling) shows in the very next read, cache or not.
func testWebhooksToSendSeeEveryChange(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	Publish(t, s, "message.received", "") // loads the cache on SQLite
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
	Publish(t, s, "message.received", "") // the cache again
	if err := s.DisableWebhook(ctx, w.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if got := read(); got.Enabled {
		t.Errorf("after disabling: still enabled")
	}
}

// The activity chart has one bucket per clock hour, the last the current one; attempts older
// than a day are out of it, and the last attempt is the latest by time, whatever order the
// records came in. A webhook quiet for days still shows its last attempt.
func testWebhookActivityCountsAttemptsPerHour(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	busy := NewWebhook(t, s, "message.received", true)
	quiet := NewWebhook(t, s, "conversation.started", true)
	now := time.Date(2026, 11, 26, 9, 40, 0, 0, time.UTC)
	AttemptAt(t, s, busy, now.Add(-time.Minute), true)               // this hour
	AttemptAt(t, s, busy, now.Add(-50*time.Minute), false)           // the hour before (08:50)
	AttemptAt(t, s, busy, now.Add(-45*time.Minute), true)            // 08:55, recorded after the 09:39 one
	AttemptAt(t, s, busy, now.Add(-25*time.Hour), true)              // out of the chart
	AttemptAt(t, s, busy, now.Add(-23*time.Hour-time.Minute), false) // the first bucket (10:39 yesterday)
	stats, last, err := s.WebhookActivity(ctx, []string{busy.ID, quiet.ID}, now)
	if err != nil {
		t.Fatal(err)
	}
	got := stats[busy.ID]
	if len(got) != 24 {
		t.Fatalf("%d buckets, want 24", len(got))
	}
	want := map[int]models.WebhookStats{23: {Succeeded: 1}, 22: {Succeeded: 1, Failed: 1}, 0: {Failed: 1}}
	for i, b := range got {
		if b != want[i] {
			t.Errorf("bucket %d: %+v, want %+v", i, b, want[i])
		}
	}
	if l := last[busy.ID]; l == nil || !l.At.Equal(now.Add(-time.Minute)) || l.Status != models.OutcomeSucceeded || *l.StatusCode != 200 {
		t.Errorf("last attempt: %+v, want the succeeded one a minute ago", l)
	}
	if last[quiet.ID] != nil {
		t.Errorf("a webhook never attempted has a last attempt: %+v", last[quiet.ID])
	}

	// Three days later nothing is in the chart, but the last attempt still shows.
	later := now.Add(72 * time.Hour)
	stats, last, err = s.WebhookActivity(ctx, []string{busy.ID}, later)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range stats[busy.ID] {
		if b != (models.WebhookStats{}) {
			t.Errorf("three days later, bucket %d: %+v, want empty", i, b)
		}
	}
	if l := last[busy.ID]; l == nil || !l.At.Equal(now.Add(-time.Minute)) {
		t.Errorf("three days later, last attempt: %+v, want the one a minute before", l)
	}

	// Deleting the webhook takes its activity and attempts with it.
	if err := s.DeleteWebhook(ctx, busy.ID); err != nil {
		t.Fatal(err)
	}
	if _, last, err = s.WebhookActivity(ctx, []string{busy.ID}, now); err != nil || last[busy.ID] != nil {
		t.Errorf("after deleting: last attempt %+v, %v; want none", last[busy.ID], err)
	}
}

// One record of several webhooks' attempts over two hours adds each to its own hour, onto
// what the hour held already, and keeps each webhook's latest attempt as its last.
func testWebhookActivityOfOneRecordSpansWebhooksAndHours(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	a := NewWebhook(t, s, "message.received", true)
	c := NewWebhook(t, s, "message.received", true)
	now := time.Date(2026, 11, 26, 9, 40, 0, 0, time.UTC)
	AttemptAt(t, s, a, now.Add(-2*time.Minute), false) // already in this hour
	var results []models.Result
	for i, at := range []time.Duration{-time.Minute, -50 * time.Minute, -3 * time.Minute, -55 * time.Minute, -30 * time.Second} {
		p := Publish(t, s, "message.received", "")
		for _, d := range p.Deliveries {
			ok := i != 1 || d.WebhookID != a.ID // a's attempt at 08:50 failed
			results = append(results, ResultAt(d, now.Add(at), ok))
		}
	}
	if err := s.RecordResults(ctx, results); err != nil {
		t.Fatal(err)
	}
	stats, last, err := s.WebhookActivity(ctx, []string{a.ID, c.ID}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[int]models.WebhookStats{
		a.ID: {23: {Succeeded: 3, Failed: 1}, 22: {Succeeded: 1, Failed: 1}},
		c.ID: {23: {Succeeded: 3}, 22: {Succeeded: 2}},
	}
	for id, buckets := range want {
		for i, got := range stats[id] {
			if got != buckets[i] {
				t.Errorf("webhook %s, bucket %d: %+v, want %+v", id, i, got, buckets[i])
			}
		}
		if l := last[id]; l == nil || !l.At.Equal(now.Add(-30*time.Second)) || l.Status != models.OutcomeSucceeded {
			t.Errorf("webhook %s, last attempt: %+v, want the one 30 s before", id, l)
		}
	}
}

// A rotation under way is stored whole and read back the same way by the API (GetWebhook) and
// by the engine (WebhooksToSend), also after a restart: the activation time decides which
// secret signs, so it must come back exactly, and a rotation with no time set stays pending.
func testPendingRotationSurvivesARestart(t *testing.T, b Backend) {
	dsn := b.DSN(t)
	s := b.Open(t, dsn)
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	manual := NewWebhook(t, s, "message.received", true)
	since := time.Now().UTC().Truncate(time.Microsecond)
	from := since.Add(time.Hour)
	if _, err := s.ModifyWebhook(ctx, w.ID, func(w *models.Webhook) error {
		w.NextSecret, w.NextSecretSince, w.NextSecretFrom = "next", &since, &from
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ModifyWebhook(ctx, manual.ID, func(w *models.Webhook) error {
		w.NextSecret, w.NextSecretSince = "manual-next", &since
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = b.Open(t, dsn)
	got, err := s.GetWebhook(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.NextSecret != "next" || got.NextSecretSince == nil || !got.NextSecretSince.Equal(since) ||
		got.NextSecretFrom == nil || !got.NextSecretFrom.Equal(from) {
		t.Fatalf("after a restart: next %q since %v from %v, want next since %v from %v",
			got.NextSecret, got.NextSecretSince, got.NextSecretFrom, since, from)
	}
	sending, err := s.WebhooksToSend(ctx, []string{w.ID, manual.ID})
	if err != nil {
		t.Fatal(err)
	}
	if hex, _ := sending[w.ID].SecretsAt(from.Add(-time.Second)); hex != "s" {
		t.Errorf("the engine's copy signs with %q before the activation time, want the current secret", hex)
	}
	if hex, _ := sending[w.ID].SecretsAt(from); hex != "next" {
		t.Errorf("the engine's copy signs with %q at the activation time, want the next secret", hex)
	}
	m := sending[manual.ID]
	if m.NextSecret != "manual-next" || m.NextSecretFrom != nil {
		t.Fatalf("a rotation without a time: next %q from %v, want pending with no time", m.NextSecret, m.NextSecretFrom)
	}
	if hex, _ := m.SecretsAt(since.Add(365 * 24 * time.Hour)); hex != "s" {
		t.Errorf("a rotation nobody activated signs with %q a year later, want the current secret", hex)
	}
}
