package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// BacklogResult is scenario 4.
type BacklogResult struct {
	Deliveries   int     `json:"deliveries"`
	Webhooks     int     `json:"webhooks"`
	SeedSeconds  float64 `json:"seed_seconds"` // queuing them through the store, server stopped
	DrainSeconds float64 `json:"drain_seconds"`
	DrainPerSec  float64 `json:"drain_per_sec"`
	Delivered    int64   `json:"delivered"`
	Complete     bool    `json:"complete"`
	PeakRSSMB    float64 `json:"peak_rss_mb"`
	BaseRSSMB    float64 `json:"base_rss_mb"` // the measured process before the server started
	RSSScope     string  `json:"rss_scope"`
	// From the server's /metrics at the end of the drain: how much of the memory is the Go
	// heap, and how much lies outside it (SQLite's page caches are allocated outside it).
	GoHeapInuseMB float64 `json:"go_heap_inuse_mb"`
	GoSysMB       float64 `json:"go_sys_mb"`
}

// backlog queues the deliveries while no dispatcher runs (the receiver is, in effect, down),
// then starts Hookrelay and measures the drain and the serving process's peak memory.
func (r *runner) backlog(ctx context.Context) (*BacklogResult, error) {
	k := r.o.k
	events := (r.o.backlog + k - 1) / k
	res := &BacklogResult{Deliveries: events * k, Webhooks: k}
	r.logf("backlog: queuing %d deliveries (%d events × %d webhooks) with the server stopped", res.Deliveries, events, k)
	dsn, cleanup, err := r.be.fresh(ctx, "backlog")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	s, err := startSink(int64(res.Deliveries), false)
	if err != nil {
		return nil, err
	}
	defer s.close()

	seedStart := time.Now()
	if err := seedBacklog(ctx, dsn, s.base, k, events); err != nil {
		return nil, err
	}
	res.SeedSeconds = time.Since(seedStart).Seconds()
	r.logf("backlog: queued in %.1fs; starting the server", res.SeedSeconds)

	if r.bin == "" {
		runtime.GC()
		debug.FreeOSMemory()
		resetPeakRSS()
		res.BaseRSSMB = mb(procStatus(os.Getpid(), "VmRSS"))
	}
	stopProfile, err := r.startProfile("backlog")
	if err != nil {
		return nil, err
	}
	defer stopProfile()
	start := time.Now()
	h, cl, stop, err := r.start(dsn, r.o.deliveryTimeout)
	if err != nil {
		return nil, err
	}
	res.RSSScope = h.rssScope()
	var end time.Time
	res.Complete, end = r.awaitDelivered(ctx, s)
	res.PeakRSSMB = mb(h.peakRSS())
	if v, err := scrape(ctx, cl, "go_memstats_heap_inuse_bytes"); err == nil {
		res.GoHeapInuseMB = v / (1 << 20)
	}
	if v, err := scrape(ctx, cl, "go_memstats_sys_bytes"); err == nil {
		res.GoSysMB = v / (1 << 20)
	}
	stop()
	res.Delivered = s.count.Load()
	res.DrainSeconds = end.Sub(start).Seconds()
	res.DrainPerSec = float64(res.Delivered) / res.DrainSeconds
	r.logf("backlog: %d delivered in %.1fs (%.0f/s), peak RSS %.0f MB (Go heap in use %.0f MB, Go runtime total %.0f MB at the end)",
		res.Delivered, res.DrainSeconds, res.DrainPerSec, res.PeakRSSMB, res.GoHeapInuseMB, res.GoSysMB)
	return res, nil
}

// seedBacklog writes webhooks and events straight through the store, in batches of 1000
// events per transaction, as the batch endpoint would but without a server running.
func seedBacklog(ctx context.Context, dsn, sinkBase string, k, events int) error {
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	for i := range k {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		w := &models.Webhook{Name: fmt.Sprintf("bench %d", i), URL: fmt.Sprintf("%s/ok/%d", sinkBase, i),
			Secret: "whsec_" + base64.StdEncoding.EncodeToString(key), Events: models.EventMessageReceived, Enabled: true}
		if err := db.CreateWebhook(ctx, w); err != nil {
			return err
		}
	}
	et, _ := models.LookupEventType(models.EventMessageReceived)
	now := time.Now().UTC().Truncate(time.Second)
	payload, err := et.BuildBody(eventData(0, now), now)
	if err != nil {
		return fmt.Errorf("build body: %w", err)
	}
	const per = 1000
	in := make([]store.PublishInput, 0, per)
	for from := 0; from < events; from += per {
		in = in[:0]
		for range min(per, events-from) {
			in = append(in, store.PublishInput{Type: et.Name, Payload: payload, OccurredAt: now})
		}
		if _, err := db.Publish(ctx, in); err != nil {
			return fmt.Errorf("queue backlog: %w", err)
		}
	}
	return nil
}
