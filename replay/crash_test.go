package replay_test

import (
	"context"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/internal/wait"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// A replay answered 202 and then killed mid-way (SIGKILL) goes on when the server starts
// again on the same database: every event reaches the receiver, each queued exactly once.
func TestAReplayKilledMidwayResumesAfterARestart(t *testing.T) {
	const events = 30000
	bin := testsrv.BuildBinary(t)
	db := filepath.Join(t.TempDir(), "replay.db")
	flags := []string{"--db", db, "--allow-http", "--allow-private-targets"}

	var mu sync.Mutex
	seen := map[string]int{}
	rc := testsrv.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("X-Webhook-Id")]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	distinct := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }

	first := testsrv.StartBinary(t, bin, flags...)
	since := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	item := map[string]any{"event": "message.received", "data": map[string]any{"conversation_id": 1, "message_id": 2, "content": "hi"}}
	batch := make([]map[string]any, 1000)
	for i := range batch {
		batch[i] = item
	}
	for range events / len(batch) {
		first.Do(t, http.MethodPost, "/api/v1/events/batch", map[string]any{"events": batch}, http.StatusAccepted, nil)
	}
	// The webhook comes after the events: only the replay sends them.
	wh := first.CreateWebhook(t, map[string]any{"name": "replayed", "url": rc.URL, "events": []string{"message.received"}})
	var queued api.ReplayQueued
	first.Do(t, http.MethodPost, "/api/v1/webhooks/"+wh.ID+"/replay", map[string]any{"since": since}, http.StatusAccepted, &queued)
	// Killed once replayed deliveries are arriving, while the rest is still being queued.
	wait.Until(t, "the first replayed deliveries arrive", func() bool { return distinct() >= 500 })
	first.Kill(t)
	if queued.Queued != events || queued.Job.ID == "" {
		t.Fatalf("replay answered %+v, want %d events and a job", queued, events)
	}

	// What the killed process left: the job, part way.
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	left, err := st.GetReplayJob(context.Background(), queued.Job.ID)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed with %d of %d queued (%s)", left.Queued, left.Total, left.Status)
	if left.Status != models.ReplayRunning || left.Queued == 0 || left.Queued >= events {
		t.Fatalf("the kill came after the replay ended (%+v): nothing to resume", left)
	}

	second := testsrv.StartBinary(t, bin, flags...)
	wait.Until(t, "the replay resumes and every event arrives", func() bool { return distinct() == events })
	var job api.ReplayJob
	wait.Until(t, "the job is done", func() bool {
		second.Do(t, http.MethodGet, "/api/v1/replays/"+queued.Job.ID, nil, http.StatusOK, &job)
		return job.Status == models.ReplayDone
	})
	if job.Queued != events {
		t.Errorf("the job queued %d, want %d", job.Queued, events)
	}
	second.Terminate(t, 30*time.Second)
	st, err = store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var rows []struct{ N int64 }
	if err := st.ScanSQL(context.Background(), &rows, `SELECT COUNT(*) AS n FROM deliveries WHERE webhook_id = ?`, wh.ID); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].N != events {
		t.Errorf("%v delivery rows for the webhook, want exactly one per event (%d)", rows, events)
	}
}
