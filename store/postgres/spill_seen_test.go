package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/conformance"
)

// A publish locks the spills the previous one found before it reads the webhooks, and owes
// events only to those: a spill another replica started is owed from this replica's second
// publish on (the first writes a row, as a publish a moment before the spill would have), and
// a spill that ended while this replica still counted it gets rows again and no owed row.
func TestAPublishOwesOnlyTheSpillsItLockedBeforeReading(t *testing.T) {
	a, b, _ := twoReplicas(t)
	ctx := context.Background()
	w := conformance.NewWebhook(t, a, "message.received", true)
	if _, err := a.Spill(ctx, []string{w.ID}); err != nil {
		t.Fatal(err)
	}

	first := conformance.Publish(t, b, "message.received", "")
	if st := conformance.QueueStats(t, b); st.Owed != 0 || st.Pending != 1 {
		t.Fatalf("after b's first publish to a spill it had not seen: %+v, want its event as a row", st)
	}
	second := conformance.Publish(t, b, "message.received", "")
	if st := conformance.QueueStats(t, b); st.Owed != 1 || st.Pending != 1 || st.Spilled != 1 {
		t.Fatalf("after b's second publish: %+v, want its event owed", st)
	}

	// a takes and records what is owed, which ends the spill; b still counts it spilled.
	tk := takeAt(t, a, "a", time.Now(), w.ID, 10)
	if got := eventsOf(tk.Taken); len(got) != 1 || got[0] != second.Event.ID {
		t.Fatalf("took %v, want %s", got, second.Event.ID)
	}
	conformance.RecordDelivered(t, a, tk.Taken...)
	if st := conformance.QueueStats(t, a); st.Spilled != 0 || st.Owed != 0 {
		t.Fatalf("after everything owed was recorded: %+v, want the spill ended", st)
	}
	third := conformance.Publish(t, b, "message.received", "")
	if st := conformance.QueueStats(t, b); st.Owed != 0 || st.Spilled != 0 || st.Pending != 2 {
		t.Fatalf("after b published to the ended spill: %+v, want a row and nothing owed", st)
	}

	claimed, _ := conformance.ClaimFor(t, b, time.Now(), store.WebhookQuota{WebhookID: w.ID, Free: 10})
	conformance.RecordDelivered(t, b, claimed...)
	checkDeliveredOnce(t, a, w.ID, []string{first.Event.ID, second.Event.ID, third.Event.ID})
}
