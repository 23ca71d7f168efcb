package conformance

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// A replay job queues its events a batch per step and keeps its position in the database: a
// store closed and opened again mid-job (a restart) goes on from there, and every event is
// queued exactly once.
func testReplayJobResumesWhereItStopped(t *testing.T, b Backend) {
	ctx := context.Background()
	dsn := b.DSN(t)
	s := b.Open(t, dsn)
	since := time.Now().UTC().Add(-time.Minute)
	var events []string
	for range 25 {
		events = append(events, Publish(t, s, "message.received", "").Event.ID)
	}
	w := NewWebhook(t, s, "message.received", true) // after the events: only the replay sends them
	f := store.ReplayFilter{WebhookID: w.ID, Types: w.EventList(), Since: since, Until: time.Now().UTC().Add(time.Second)}
	total, err := s.CountReplay(ctx, f)
	if err != nil || total != 25 {
		t.Fatalf("count %d, %v", total, err)
	}
	j := &models.ReplayJob{WebhookID: w.ID, Types: "message.received", Since: f.Since, Until: f.Until, Total: total}
	if err := s.CreateReplayJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	got, n, err := s.StepReplayJob(ctx, j.ID, 10)
	if err != nil || n != 10 || got.Queued != 10 || got.Status != models.ReplayRunning || got.AfterEvent != events[9] {
		t.Fatalf("first step: %+v, %d, %v", got, n, err)
	}
	if running, err := s.RunningReplayJobs(ctx); err != nil || len(running) != 1 || running[0] != j.ID {
		t.Fatalf("running jobs %v, %v", running, err)
	}

	if err := s.Close(); err != nil { // the restart
		t.Fatal(err)
	}
	s = b.Open(t, dsn)
	for _, want := range []int{10, 5, 0} {
		if got, n, err = s.StepReplayJob(ctx, j.ID, 10); err != nil || n != want {
			t.Fatalf("step after the restart: queued %d (%v), want %d", n, err, want)
		}
	}
	if got.Status != models.ReplayDone || got.Queued != 25 || got.FinishedAt == nil {
		t.Errorf("job after its last step: %+v", got)
	}
	if !SameSet(RowsOf(t, s, w.ID), events) {
		t.Errorf("the replay queued %d deliveries, want each of the 25 events once", len(RowsOf(t, s, w.ID)))
	}
	if _, n, _ := s.StepReplayJob(ctx, j.ID, 10); n != 0 {
		t.Errorf("a finished job queued %d more", n)
	}
	if running, _ := s.RunningReplayJobs(ctx); len(running) != 0 {
		t.Errorf("running jobs after the end: %v", running)
	}
	if list, err := s.ListReplayJobs(ctx, w.ID, 10); err != nil || len(list) != 1 || list[0].ID != j.ID {
		t.Errorf("list %v, %v", list, err)
	}

	// A webhook disabled mid-job stops it, saying why.
	j2 := &models.ReplayJob{WebhookID: w.ID, Types: "message.received", Since: since, Until: time.Now().UTC().Add(time.Second)}
	if err := s.CreateReplayJob(ctx, j2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ModifyWebhook(ctx, w.ID, func(w *models.Webhook) error { w.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.StepReplayJob(ctx, j2.ID, 10); err != nil || got.Status != models.ReplayStopped || got.Error == "" {
		t.Errorf("job of a disabled webhook: %+v, %v", got, err)
	}
}

// A replay's period is a range of the events' time-ordered ids: a bound inside an event's
// millisecond takes in the whole of it, so an event is replayed by a replay until any moment
// of the millisecond it was published in (a replay until now, asked at once), and one whose
// millisecond begins at until or ends before since is not.
func testReplayPeriodGoesByTheMillisecondOfEachEvent(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t, b.DSN(t))
	ev := Publish(t, s, "message.received", "").Event
	w := NewWebhook(t, s, "message.received", true)
	ms, err := strconv.ParseInt(ev.ID[len("evt_"):len("evt_")+12], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(ms).UTC() // the start of the event's millisecond
	for _, c := range []struct {
		since, until time.Time
		want         int64
	}{
		{at.Add(-time.Hour), at.Add(time.Nanosecond), 1},
		{at.Add(time.Millisecond - time.Nanosecond), at.Add(time.Hour), 1},
		{at.Add(-time.Hour), at, 0},
		{at.Add(time.Millisecond), at.Add(time.Hour), 0},
	} {
		n, err := s.CountReplay(ctx, store.ReplayFilter{WebhookID: w.ID, Types: w.EventList(), Since: c.since, Until: c.until})
		if err != nil || n != c.want {
			t.Errorf("replay from %s until %s of an event published at %s: %d events (%v), want %d",
				c.since.Format(time.RFC3339Nano), c.until.Format(time.RFC3339Nano), ev.CreatedAt.Format(time.RFC3339Nano), n, err, c.want)
		}
	}
}
