package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/conformance"
)

// A record of results is its transaction's statements and no more: the row lock, the update
// of the deliveries, the attempts with the activity they add, and the webhook's health only
// when this process has not written that health within the last second. The planner's settings that
// keep a record on its indexes are the recorder connections' own (recordPlan), not a
// statement in every transaction.
func TestARecordSendsOnlyItsWrites(t *testing.T) {
	s, tr := tracedStore(t, false)
	ctx := context.Background()
	w := conformance.NewWebhook(t, s, "message.received", true)

	record := func(ok bool) []string {
		t.Helper()
		var ds []*models.Delivery
		for range 3 {
			ds = append(ds, conformance.Publish(t, s, "message.received", "").Deliveries...)
		}
		results := make([]models.Result, len(ds))
		for i, dl := range ds {
			results[i] = conformance.ResultAt(dl, time.Now().UTC(), ok)
		}
		return tr.during(func() {
			if err := s.RecordResults(ctx, results); err != nil {
				t.Fatal(err)
			}
		})
	}
	want := func(what string, sent []string, health bool) {
		t.Helper()
		prefixes := []string{"begin", "SELECT 1 FROM deliveries", "UPDATE deliveries", "WITH w0 AS (INSERT INTO attempts"}
		if health {
			prefixes = append(prefixes, "UPDATE webhooks")
		}
		prefixes = append(prefixes, "commit")
		if len(sent) != len(prefixes) {
			t.Fatalf("%s sent %d statements, want %d: %q", what, len(sent), len(prefixes), sent)
		}
		for i, p := range prefixes {
			if !strings.HasPrefix(strings.ToUpper(sent[i]), strings.ToUpper(p)) {
				t.Fatalf("%s sent %q as statement %d, want %s…: %q", what, sent[i], i+1, p, sent)
			}
		}
	}
	record(false) // reads the attempts table's columns, once a process
	want("a record of successes after failures", record(true), true)
	want("a record of successes right after", record(true), false)
	want("a record of failures", record(false), true)
	want("a record of failures right after", record(false), false)
	want("a record of successes after those", record(true), true)
	got, err := s.GetWebhook(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.FailingSince != nil || got.LastSuccessAt == nil {
		t.Fatalf("after the last successes: failing_since %v, last_success_at %v", got.FailingSince, got.LastSuccessAt)
	}
}

// A record of many webhooks' results writes their health in one statement, where it sent one
// per webhook: with 50 endpoints timing out together, 50 round trips in one record.
func TestARecordWritesTheHealthOfAllItsWebhooksInOneStatement(t *testing.T) {
	s, tr := tracedStore(t, false)
	ctx := context.Background()
	var hooks []*models.Webhook
	for range 10 {
		hooks = append(hooks, conformance.NewWebhook(t, s, "message.received", true))
	}
	conformance.AttemptAt(t, s, hooks[0], time.Now().UTC(), true) // reads the tables' columns, once a process
	ds := conformance.Publish(t, s, "message.received", "").Deliveries
	results := make([]models.Result, len(ds))
	for i, dl := range ds {
		results[i] = conformance.ResultAt(dl, time.Now().UTC(), dl.WebhookID == hooks[0].ID)
	}
	sent := tr.during(func() {
		if err := s.RecordResults(ctx, results); err != nil {
			t.Fatal(err)
		}
	})
	n := 0
	for _, q := range sent {
		if strings.HasPrefix(q, "UPDATE webhooks") {
			n++
		}
	}
	if n != 1 || len(sent) != 6 {
		t.Fatalf("a record of 10 webhooks' results sent %d statements, %d of them to webhooks: %q", len(sent), n, sent)
	}
	for i, w := range hooks {
		got, err := s.GetWebhook(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if failing := got.FailingSince != nil; failing != (i != 0) {
			t.Errorf("webhook %d: failing_since %v after a record of its %s", i, got.FailingSince, map[bool]string{true: "failure", false: "success"}[i != 0])
		}
	}
}
