package main

import (
	"context"
	"fmt"
	"time"
)

// ReplicaResult is the throughput of R replicas of the binary sharing one PostgreSQL database:
// events are published round-robin through all of them and every replica delivers.
type ReplicaResult struct {
	Replicas         int     `json:"replicas"`
	Events           int     `json:"events"`
	Webhooks         int     `json:"webhooks"`
	BatchSize        int     `json:"batch_size"`
	AcceptedPerSec   float64 `json:"events_accepted_per_sec"`
	Delivered        int64   `json:"delivered"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	Complete         bool    `json:"complete"`
	PublishErrors    int     `json:"publish_errors"`
}

// replicas runs the scenario for each count in -replicas. Only meaningful on PostgreSQL (a
// SQLite file belongs to one process), and only with the binary: replicas are processes.
func (r *runner) replicas(ctx context.Context) ([]*ReplicaResult, error) {
	if r.be.name != "postgres" {
		return nil, fmt.Errorf("needs a postgres:// -db: SQLite serves one process")
	}
	var out []*ReplicaResult
	for _, n := range r.o.replicas {
		res, err := r.replicaPhase(ctx, n)
		if res != nil {
			out = append(out, res)
		}
		if err != nil {
			return out, fmt.Errorf("%d replicas: %w", n, err)
		}
	}
	return out, nil
}

func (r *runner) replicaPhase(ctx context.Context, replicas int) (*ReplicaResult, error) {
	n, k, b := r.o.n, r.o.k, max(r.o.batch, 1)
	r.logf("replicas: %d processes on one database, %d events × %d webhooks, batches of %d", replicas, n, k, b)
	dsn, cleanup, err := r.be.fresh(ctx, fmt.Sprintf("replicas_%d", replicas))
	if err != nil {
		return nil, err
	}
	defer cleanup()
	s, err := startSink(int64(n*k), false)
	if err != nil {
		return nil, err
	}
	defer s.close()
	var clients []*client
	for range replicas {
		h, err := startChild(r.replicaBin, serverOptions{dsn: dsn, timeout: r.o.deliveryTimeout, workers: r.o.workers, otlp: r.otlp})
		if err != nil {
			return nil, err
		}
		cl := newClient(h.baseURL(), benchToken, r.o.c*2)
		clients = append(clients, cl)
		defer func() {
			cl.http.CloseIdleConnections()
			_ = h.stop()
		}()
	}
	if err := subscribeSink(ctx, clients[0], s, k); err != nil {
		return nil, err
	}
	res := &ReplicaResult{Replicas: replicas, Events: n, Webhooks: k, BatchSize: b}
	requests := (n + b - 1) / b
	start := time.Now()
	elapsed, failures, firstErr := closedLoop(ctx, requests, r.o.c, func(ctx context.Context, i int) error {
		return publishRequest(ctx, clients[i%len(clients)], i, b, n)
	})
	res.PublishErrors = failures
	if failures > 0 {
		r.logf("replicas: %d publish requests failed, first: %v", failures, firstErr)
	}
	res.AcceptedPerSec = float64(n) / elapsed.Seconds()
	var end time.Time
	res.Complete, end = r.awaitDelivered(ctx, s)
	res.Delivered = s.count.Load()
	res.DeliveriesPerSec = float64(res.Delivered) / end.Sub(start).Seconds()
	r.logf("replicas: %d × hookrelay: %.0f events/s accepted, %.0f deliveries/s", replicas, res.AcceptedPerSec, res.DeliveriesPerSec)
	return res, nil
}
