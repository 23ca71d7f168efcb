package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// BenchmarkClaimFor claims 25 due deliveries of each of 4 webhooks per op (100 in all) from a
// queue of 10,000, recording each claimed delivery's result off the clock so the queue stays
// the same size: the dispatcher's claim.
func BenchmarkClaimFor(b *testing.B) {
	for _, be := range storetest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			s, all := benchQueue(b, be, 2500)
			ctx := context.Background()
			var hooks []store.WebhookQuota
			seen := map[string]bool{}
			for _, d := range all {
				if !seen[d.WebhookID] {
					seen[d.WebhookID] = true
					hooks = append(hooks, store.WebhookQuota{WebhookID: d.WebhookID, Free: 25})
				}
			}
			b.ReportAllocs()
			ops := 0
			for b.Loop() {
				got, _, err := s.ClaimFor(ctx, store.ClaimForRequest{Owner: "bench", Now: time.Now(), Lease: time.Minute, Hooks: hooks})
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != 100 {
					b.Fatalf("claimed %d, want 100", len(got))
				}
				ops++
				// Put them back at the end of the queue, as retries due now would be.
				b.StopTimer()
				results := make([]models.Result, len(got))
				status := 500
				for i, d := range got {
					results[i] = models.Result{DeliveryID: d.ID, WebhookID: d.WebhookID, Status: models.StatusPending,
						NextAttemptAt: time.Now().UnixMilli(), Attempt: &models.Attempt{ID: models.NewID("att"), DeliveryID: d.ID,
							WebhookID: d.WebhookID, Number: d.AttemptCount + 1, StartedAt: time.Now().UTC(), ResponseStatus: &status,
							Outcome: models.OutcomeFailed}}
				}
				if err := s.RecordResults(ctx, results); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*100), "ns/delivery")
		})
	}
}
