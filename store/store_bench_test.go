package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// benchWebhook creates an enabled, signed webhook for message.received.
func benchWebhook(b *testing.B, s *store.Store) *models.Webhook {
	b.Helper()
	w := &models.Webhook{Name: "w", URL: "https://example.com/h", Events: models.EventMessageReceived, Enabled: true,
		Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	if err := s.CreateWebhook(context.Background(), w); err != nil {
		b.Fatal(err)
	}
	return w
}

// benchQueue opens a store with 4 webhooks and n events of message.received pending for
// each of them (4n deliveries), as a publisher would leave it.
func benchQueue(b *testing.B, be storetest.Backend, n int) (*store.Store, []*models.Delivery) {
	b.Helper()
	ctx := context.Background()
	s := storetest.Open(b, be.DSN(b))
	for range 4 {
		benchWebhook(b, s)
	}
	et, _ := models.LookupEventType(models.EventMessageReceived)
	now := time.Now().UTC().Truncate(time.Second)
	payload := et.Example(now)
	var all []*models.Delivery
	for from := 0; from < n; from += 500 {
		in := make([]store.PublishInput, min(500, n-from))
		for i := range in {
			in[i] = store.PublishInput{Type: et.Name, Payload: payload, OccurredAt: now}
		}
		res, err := s.Publish(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range res {
			all = append(all, p.Deliveries...)
		}
	}
	return s, all
}

// BenchmarkRecordResults records 100 successful attempts per op in one call (the
// dispatcher's group commit), with request and response headers of realistic size.
func BenchmarkRecordResults(b *testing.B) {
	for _, be := range storetest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			s, all := benchQueue(b, be, 2500)
			ctx := context.Background()
			const per = 100
			status := 200
			reqHeaders := `{"Content-Type":"application/json","User-Agent":"Hookrelay/dev","Webhook-Id":"evt_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f",` +
				`"Webhook-Signature":"v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=","Webhook-Timestamp":"1736937000",` +
				`"X-Webhook-Attempt":"1","X-Webhook-Event":"message.received","X-Webhook-Id":"evt_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f",` +
				`"X-Webhook-Signature":"b8c8d2c31c3bb7a6f7e7d0d1f1b4e3f4a9c0b1d2e3f4a5b6c7d8e9f0a1b2c3d4","X-Webhook-Timestamp":"2025-01-15T10:30:00+00:00"}`
			respHeaders := `{"Content-Length":"0","Date":"Wed, 15 Jan 2025 10:30:00 GMT"}`
			results := make([]models.Result, per)
			b.ReportAllocs()
			next, ops := 0, 0
			for b.Loop() {
				if next+per > len(all) {
					// Every delivery has succeeded once: make them pending again, off the clock.
					b.StopTimer()
					if err := s.ExecSQL(context.Background(), `UPDATE deliveries SET status = 'pending'`); err != nil {
						b.Fatal(err)
					}
					next = 0
					b.StartTimer()
				}
				now := time.Now().UTC()
				for j := range results {
					d := all[next+j]
					results[j] = models.Result{DeliveryID: d.ID, WebhookID: d.WebhookID, Status: models.StatusSucceeded, Succeeded: true,
						Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: d.ID, WebhookID: d.WebhookID, Number: 1,
							StartedAt: now, DurationMs: 2, RequestHeaders: reqHeaders, ResponseStatus: &status,
							ResponseHeaders: respHeaders, Outcome: models.OutcomeSucceeded}}
				}
				next += per
				ops++
				if err := s.RecordResults(ctx, results); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*per), "ns/delivery")
		})
	}
}

// BenchmarkPublish stores a batch of 100 events for 4 subscribed webhooks per op (400
// deliveries): the batch endpoint's transaction.
func BenchmarkPublish(b *testing.B) {
	for _, be := range storetest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			s, _ := benchQueue(b, be, 0)
			ctx := context.Background()
			et, _ := models.LookupEventType(models.EventMessageReceived)
			now := time.Now().UTC().Truncate(time.Second)
			payload := et.Example(now)
			in := make([]store.PublishInput, 100)
			for i := range in {
				in[i] = store.PublishInput{Type: et.Name, Payload: payload, OccurredAt: now}
			}
			b.ReportAllocs()
			ops := 0
			for b.Loop() {
				if _, err := s.Publish(ctx, in); err != nil {
					b.Fatal(err)
				}
				ops++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*len(in)), "ns/event")
		})
	}
}

// BenchmarkTakeAndRecordOwed is a spilled webhook's path: take 100 owed events (a read), then
// record their first attempts, which writes each delivery row once, in its final state, with
// the attempt. Compare with BenchmarkPublish's row per delivery plus BenchmarkRecordResults.
func BenchmarkTakeAndRecordOwed(b *testing.B) {
	ctx := context.Background()
	s := storetest.Open(b, storetest.SQLiteDSN(b))
	w := benchWebhook(b, s)
	et, _ := models.LookupEventType(models.EventMessageReceived)
	now := time.Now().UTC().Truncate(time.Second)
	payload := et.Example(now)
	const per = 100
	status := 200
	reqHeaders := strings.Repeat("x", 600)
	b.ReportAllocs()
	ops := 0
	for b.Loop() {
		b.StopTimer()
		// The previous op caught up, which ended the spill: spill again, off the clock.
		if _, err := s.Spill(ctx, []string{w.ID}); err != nil {
			b.Fatal(err)
		}
		in := make([]store.PublishInput, per)
		for i := range in {
			in[i] = store.PublishInput{Type: et.Name, Payload: payload, OccurredAt: now}
		}
		if _, err := s.Publish(ctx, in); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		got, err := s.TakeSpilled(ctx, store.TakeRequest{Owner: "bench", Now: time.Now(),
			Hooks: []store.OwedQuota{{WebhookID: w.ID, Rows: per}}})
		if err != nil {
			b.Fatal(err)
		}
		taken := got[w.ID].Taken
		if len(taken) != per {
			b.Fatalf("took %d, want %d", len(taken), per)
		}
		results := make([]models.Result, len(taken))
		started := time.Now().UTC()
		for i, d := range taken {
			results[i] = models.Result{DeliveryID: d.ID, WebhookID: d.WebhookID, Status: models.StatusSucceeded, Succeeded: true,
				Owed: d.Owed, EventID: d.EventID, EventType: d.EventType, TakenAt: d.CreatedAt,
				Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: d.ID, WebhookID: d.WebhookID, Number: 1,
					StartedAt: started, DurationMs: 2, RequestHeaders: reqHeaders, ResponseStatus: &status,
					ResponseHeaders: `{"Content-Length":"0"}`, Outcome: models.OutcomeSucceeded}}
		}
		if err := s.RecordResults(ctx, results); err != nil {
			b.Fatal(err)
		}
		ops++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*per), "ns/delivery")
}
