package delivery

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// QueueStatser counts the queue for the gauges of /metrics.
type QueueStatser interface {
	QueueStats(ctx context.Context) (store.QueueStats, error)
}

// Metrics is the Prometheus view of the pipeline, served at /metrics. It implements the
// engine's Observer and the API's publish observer. No metric carries a webhook label:
// webhooks are created by users, so a per-webhook series set would grow without bound; the
// per-webhook picture lives in the API's delivery log instead.
type Metrics struct {
	reg       *prometheus.Registry
	published *prometheus.CounterVec
	fanout    prometheus.Counter
	outcomes  *prometheus.CounterVec
	responses *prometheus.CounterVec
	duration  prometheus.Histogram
	inflight  prometheus.Gauge
}

// MetricsConfig configures NewMetrics.
type MetricsConfig struct {
	// Store feeds the queue gauges; nil leaves them out.
	Store QueueStatser
	// QueueInterval is how stale the queue gauges may be (default 5s): counting a large
	// backlog costs an index scan, so scrapes share one count rather than each running it.
	QueueInterval time.Duration
	Logger        *slog.Logger
	// Sender feeds the connection metrics; nil leaves them out.
	Sender *Sender
}

// Response classes of hookrelay_delivery_responses_total.
var responseClasses = []string{"2xx", "3xx", "4xx", "5xx", "timeout", "error"}

// NewMetrics registers the pipeline's metrics, plus the Go runtime and process collectors
// (resident memory, file descriptors), on a registry of its own.
func NewMetrics(cfg MetricsConfig) *Metrics {
	if cfg.QueueInterval <= 0 {
		cfg.QueueInterval = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookrelay_events_published_total",
			Help: "Events accepted for delivery, by event type (idempotent replays not counted).",
		}, []string{"event"}),
		fanout: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookrelay_deliveries_queued_total",
			Help: "Deliveries created by published events (one per enabled subscribed webhook).",
		}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookrelay_deliveries_total",
			Help: "Delivery attempts by what they did to the delivery: succeeded, failed (for good) or retrying.",
		}, []string{"outcome"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookrelay_delivery_responses_total",
			Help: "Delivery attempts by response: status class, timeout, or error (refused, DNS, TLS, blocked).",
		}, []string{"class"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookrelay_delivery_attempt_duration_seconds",
			Help:    "Time from the start of an attempt to the end of its response excerpt.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookrelay_deliveries_in_flight",
			Help: "Delivery attempts being sent right now.",
		}),
	}
	for _, et := range models.EventTypeNames() {
		m.published.WithLabelValues(et)
	}
	for _, o := range []string{models.StatusSucceeded, models.StatusFailed, "retrying"} {
		m.outcomes.WithLabelValues(o)
	}
	for _, c := range responseClasses {
		m.responses.WithLabelValues(c)
	}
	m.reg.MustRegister(m.published, m.fanout, m.outcomes, m.responses, m.duration, m.inflight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.Store != nil {
		m.reg.MustRegister(newQueueCollector(cfg.Store, cfg.QueueInterval, cfg.Logger))
	}
	if sn := cfg.Sender; sn != nil {
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "hookrelay_delivery_connections_opened_total",
				Help: "Connections the sender made to receivers (TCP, and TLS where https).",
			}, func() float64 { return float64(sn.ConnStats().Opened) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "hookrelay_delivery_connections_reused_total",
				Help: "Delivery attempts sent on a kept-alive connection instead of a new one.",
			}, func() float64 { return float64(sn.ConnStats().Reused) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "hookrelay_delivery_connections_idle",
				Help: "Kept-alive connections to receivers waiting for the next attempt.",
			}, func() float64 { return float64(sn.ConnStats().Idle) }),
		)
	}
	return m
}

// Registry lets other packages (the inspector, say) add their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Published counts one published event and the deliveries it created.
func (m *Metrics) Published(eventType string, deliveries int) {
	m.published.WithLabelValues(eventType).Inc()
	m.fanout.Add(float64(deliveries))
}

// Attempted records one finished attempt; status is the delivery's status after it.
func (m *Metrics) Attempted(_ string, resp *Response, status string) {
	outcome := status
	if status == models.StatusPending {
		outcome = "retrying"
	}
	m.outcomes.WithLabelValues(outcome).Inc()
	m.responses.WithLabelValues(responseClass(resp)).Inc()
	m.duration.Observe(resp.Duration.Seconds())
}

// InFlight sets the number of attempts in flight.
func (m *Metrics) InFlight(n int) { m.inflight.Set(float64(n)) }

func responseClass(r *Response) string {
	switch {
	case r.TimedOut:
		return "timeout"
	case r.Err == nil && r.Status >= 200 && r.Status < 600:
		return strconv.Itoa(r.Status/100) + "xx"
	}
	return "error"
}

// queueCollector reports the outbox's depth and lag, counted at most once per interval
// whatever the scrape rate. When a count turns out slow (a huge backlog), the next one waits
// proportionally longer, so monitoring never takes more than a sliver of the database.
type queueCollector struct {
	store    QueueStatser
	interval time.Duration
	logger   *slog.Logger
	pending  *prometheus.Desc
	oldest   *prometheus.Desc
	spilled  *prometheus.Desc
	owed     *prometheus.Desc

	mu    sync.Mutex
	last  store.QueueStats
	at    time.Time // when last was read
	next  time.Time // no new count before this
	valid bool
}

func newQueueCollector(store QueueStatser, interval time.Duration, logger *slog.Logger) *queueCollector {
	return &queueCollector{
		store: store, interval: interval, logger: logger,
		pending: prometheus.NewDesc("hookrelay_queue_pending_deliveries",
			"Deliveries not finished yet, including those waiting for a retry (refreshed at most every few seconds).", nil, nil),
		oldest: prometheus.NewDesc("hookrelay_queue_oldest_pending_age_seconds",
			"How long the longest-waiting pending delivery (or owed event of a spilled webhook) has been due: the queue's lag (0 when nothing is overdue).", nil, nil),
		spilled: prometheus.NewDesc("hookrelay_queue_spilled_webhooks",
			"Webhooks too far behind to get a delivery row per event: their new events wait in order until they catch up.", nil, nil),
		owed: prometheus.NewDesc("hookrelay_queue_spilled_events",
			"Events the spilled webhooks still owe, not counted in the pending deliveries.", nil, nil),
	}
}

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.pending
	ch <- q.oldest
	ch <- q.spilled
	ch <- q.owed
}

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	if !now.Before(q.next) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := q.store.QueueStats(ctx)
		cancel()
		took := time.Since(now)
		q.next = now.Add(max(q.interval, 50*took))
		if err != nil {
			q.logger.Warn("metrics: queue stats", "err", err)
		} else {
			q.last, q.at, q.valid = st, now, true
		}
	}
	if !q.valid {
		return
	}
	ch <- prometheus.MustNewConstMetric(q.pending, prometheus.GaugeValue, float64(q.last.Pending))
	ch <- prometheus.MustNewConstMetric(q.spilled, prometheus.GaugeValue, float64(q.last.Spilled))
	ch <- prometheus.MustNewConstMetric(q.owed, prometheus.GaugeValue, float64(q.last.Owed))
	age := 0.0
	if q.last.OldestDue > 0 {
		// Measured against the time of the count, not now, so a cached count does not
		// show a lag that grows between refreshes.
		age = max(0, q.at.Sub(time.UnixMilli(q.last.OldestDue)).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(q.oldest, prometheus.GaugeValue, age)
}
