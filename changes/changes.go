// Package changes is the admin change stream: the API, the engine and the periodic jobs note
// what they changed (a webhook, an event, a delivery, an API key), and a Feed pushes those
// notices, coalesced, to every admin browser over one WebSocket (GET /api/v1/changes), so the
// pages follow the server without polling. On PostgreSQL the notices of every replica reach
// the browsers of every other one through NOTIFY.
//
// A notice says only what changed, never how: a page refetches what it shows. That keeps the
// messages small and the stream free of secrets, and lets any number of changes in a window
// travel as one message.
package changes

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookrelay/hookrelay/livesocket"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// Kind names what changed. A delivery notice also names its webhook and its event, whose
// counts and last outcomes it changes.
type Kind string

const (
	Webhooks   Kind = "webhooks"   // created, updated, deleted, enabled, disabled, tested, delivered to, spilled
	Events     Kind = "events"     // published, or one of its deliveries changed state
	Deliveries Kind = "deliveries" // queued, attempted, retried, cancelled
	APIKeys    Kind = "api_keys"   // created or revoked
)

// Kinds are every kind, in the order messages list them.
var Kinds = []Kind{Webhooks, Events, Deliveries, APIKeys}

// Topic is the hub topic every change-stream socket subscribes to.
const Topic = "changes"

// MaxIDs bounds the ids one message lists per kind; past it the kind says many changed.
const MaxIDs = 100

// notifyIDs bounds the ids per kind in a NOTIFY payload, which PostgreSQL limits to 8000
// bytes: four kinds of 40 ids of about 40 bytes fit.
const notifyIDs = 40

// DefaultWindow is how long notices gather before they are sent as one message.
const DefaultWindow = 300 * time.Millisecond

// Message is one push of the change stream: per kind, the ids that changed since the last
// message, or many: true when there were more than the message lists (refetch everything of
// that kind). A kind with no change is left out.
type Message struct {
	Type       string   `json:"type" example:"changes" enums:"changes"`
	Webhooks   *Changed `json:"webhooks,omitempty"`
	Events     *Changed `json:"events,omitempty" extensions:"x-example-of=absent"`
	Deliveries *Changed `json:"deliveries,omitempty" extensions:"x-example-of=absent"`
	APIKeys    *Changed `json:"api_keys,omitempty" extensions:"x-example-of=absent"`
} // @name ChangeMessage

// Changed is what changed of one kind.
type Changed struct {
	IDs  []string `json:"ids" example:"wh_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	Many bool     `json:"many" example:"false"`
} // @name ChangedIDs

func (m *Message) kind(k Kind) **Changed {
	switch k {
	case Webhooks:
		return &m.Webhooks
	case Events:
		return &m.Events
	case Deliveries:
		return &m.Deliveries
	default:
		return &m.APIKeys
	}
}

// batch gathers ids per kind, up to a bound; past it the kind is many.
type batch struct {
	ids  map[Kind]map[string]struct{}
	many map[Kind]bool
}

func newBatch() batch {
	return batch{ids: map[Kind]map[string]struct{}{}, many: map[Kind]bool{}}
}

func (b *batch) empty() bool { return len(b.ids) == 0 && len(b.many) == 0 }

func (b *batch) add(k Kind, id string) {
	if id == "" || b.many[k] {
		return
	}
	set := b.ids[k]
	if set == nil {
		set = map[string]struct{}{}
		b.ids[k] = set
	}
	if _, ok := set[id]; ok {
		return
	}
	if len(set) >= MaxIDs {
		b.setMany(k)
		return
	}
	set[id] = struct{}{}
}

func (b *batch) setMany(k Kind) {
	b.many[k] = true
	delete(b.ids, k) // the ids say nothing more than many does
}

func (b *batch) merge(m Message) {
	for _, k := range Kinds {
		c := *m.kind(k)
		if c == nil {
			continue
		}
		if c.Many {
			b.setMany(k)
			continue
		}
		for _, id := range c.IDs {
			b.add(k, id)
		}
	}
}

// message lists at most limit ids per kind; a kind with more says many.
func (b *batch) message(limit int) Message {
	m := Message{Type: "changes"}
	for _, k := range Kinds {
		set := b.ids[k]
		switch {
		case b.many[k] || len(set) > limit:
			*m.kind(k) = &Changed{IDs: []string{}, Many: true}
		case len(set) > 0:
			c := &Changed{IDs: make([]string, 0, len(set))}
			for id := range set {
				c.IDs = append(c.IDs, id)
			}
			*m.kind(k) = c
		}
	}
	return m
}

// Replicas is what crossing notices between replicas needs (PostgreSQL's NOTIFY and LISTEN;
// SQLite's driver does neither, having one process).
type Replicas interface {
	Notify(ctx context.Context, channel, payload string) error
	Listen(ctx context.Context, channel string, fn func(payload string))
	IsPostgres() bool
}

// Config configures a Feed.
type Config struct {
	Hub      *livesocket.Hub
	Replicas Replicas      // nil: this process only
	Window   time.Duration // DefaultWindow when zero
	Logger   *slog.Logger
}

// Feed coalesces notices and pushes them. Note never waits on a browser or the database: it
// adds ids to a bounded set under a lock and wakes the sender, which sends at most one
// message per window. Browsers that fall behind are dropped by the hub; they reconnect and
// refetch everything.
type Feed struct {
	cfg  Config
	self string // this replica, to skip its own notifications

	mu     sync.Mutex
	local  batch // noted on this process: pushed here and announced to other replicas
	remote batch // heard from other replicas: pushed here only
	kick   chan struct{}
	// listening is set once the listener first connected.
	listening atomic.Bool
}

// New builds a Feed; nothing is sent until Run.
func New(cfg Config) *Feed {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Replicas != nil && !cfg.Replicas.IsPostgres() {
		cfg.Replicas = nil
	}
	return &Feed{cfg: cfg, self: models.RandomToken(8), local: newBatch(), remote: newBatch(), kick: make(chan struct{}, 1)}
}

// Hub is where the feed's sockets are served.
func (f *Feed) Hub() *livesocket.Hub { return f.cfg.Hub }

// Note records that the objects with these ids of kind k changed.
func (f *Feed) Note(k Kind, ids ...string) {
	if f == nil || len(ids) == 0 {
		return
	}
	f.mu.Lock()
	for _, id := range ids {
		f.local.add(k, id)
	}
	f.mu.Unlock()
	f.wake()
}

// Many records that more of these kinds changed than a message could list (events pruned,
// say): pages refetch them whole.
func (f *Feed) Many(kinds ...Kind) {
	if f == nil || len(kinds) == 0 {
		return
	}
	f.mu.Lock()
	for _, k := range kinds {
		f.local.setMany(k)
	}
	f.mu.Unlock()
	f.wake()
}

// DeliveriesRecorded notes the deliveries of recorded attempt results, with their webhooks
// and events (the engine calls it once the results are stored, so a refetch sees them).
func (f *Feed) DeliveriesRecorded(results []models.Result) {
	if f == nil || len(results) == 0 {
		return
	}
	f.mu.Lock()
	for _, r := range results {
		f.local.add(Deliveries, r.DeliveryID)
		f.local.add(Webhooks, r.WebhookID)
		f.local.add(Events, r.EventID)
	}
	f.mu.Unlock()
	f.wake()
}

// WebhooksChanged notes webhooks whose queue changed (new work queued, a spill started).
func (f *Feed) WebhooksChanged(ids []string) { f.Note(Webhooks, ids...) }

func (f *Feed) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Run sends what was noted, a window at a time, until ctx is done; on PostgreSQL it also
// listens for other replicas' notices.
func (f *Feed) Run(ctx context.Context) {
	if f.cfg.Replicas != nil {
		go f.cfg.Replicas.Listen(ctx, store.ChannelChanges, f.heard)
	}
	window := time.NewTimer(f.cfg.Window)
	window.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		}
		// Gather for one window: whatever is noted meanwhile goes in the same message.
		window.Reset(f.cfg.Window)
		select {
		case <-ctx.Done():
			window.Stop()
			return
		case <-window.C:
		}
		f.flush(ctx)
	}
}

// flush pushes what gathered to this process's sockets and announces the local part.
func (f *Feed) flush(ctx context.Context) {
	f.mu.Lock()
	local, remote := f.local, f.remote
	f.local, f.remote = newBatch(), newBatch()
	f.mu.Unlock()
	if local.empty() && remote.empty() {
		return
	}
	if f.cfg.Replicas != nil && !local.empty() {
		f.announce(ctx, local)
	}
	if f.cfg.Hub.Clients(Topic) == 0 {
		return
	}
	all := local
	all.merge(remote.message(MaxIDs))
	msg, err := json.Marshal(all.message(MaxIDs))
	if err != nil {
		return
	}
	f.cfg.Hub.Publish(Topic, msg)
}

func (f *Feed) announce(ctx context.Context, b batch) {
	body, err := json.Marshal(b.message(notifyIDs))
	if err != nil {
		return
	}
	if err := f.cfg.Replicas.Notify(ctx, store.ChannelChanges, f.self+" "+string(body)); err != nil && ctx.Err() == nil {
		f.cfg.Logger.Warn("announce changes to other replicas", "err", err)
	}
}

// heard takes another replica's notice. An empty payload means the listener connected: on a
// reconnect notices may have been missed, so every kind is many then and pages refetch.
func (f *Feed) heard(payload string) {
	if payload == "" && !f.listening.Swap(true) {
		return // the first connection: nothing was missed yet
	}
	from, body, _ := strings.Cut(payload, " ")
	if from == f.self {
		return
	}
	var m Message
	if payload == "" || json.Unmarshal([]byte(body), &m) != nil {
		m = Message{}
		for _, k := range Kinds {
			*m.kind(k) = &Changed{Many: true}
		}
	}
	f.mu.Lock()
	f.remote.merge(m)
	f.mu.Unlock()
	f.wake()
}
