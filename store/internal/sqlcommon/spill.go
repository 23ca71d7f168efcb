package sqlcommon

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/storedriver"
	"gorm.io/gorm"
)

// SpillPolicy is when a publish starts a webhook's spill, the same on both drivers: when the
// dispatcher asked for it (RequestSpill), or when the webhook's backlog reached the one the
// engine set (SpillWhenPending). The backlog is looked at once per its smaller count of rows
// written for the webhook by this process, so the check costs one bounded index read per
// that many rows. How a spill is then stored and taken is each driver's own.
//
// Rows that publishes under way are writing count too (Underway), as a look cannot see them
// yet. Concurrent publishes of batches otherwise wrote rows until the first of them had
// committed enough for a look to find: on PostgreSQL, 32 publishers of 100 events each had
// written the rows of 45 publishes before the spills began, 220 ms into a burst.
type SpillPolicy struct {
	mu         sync.Mutex
	sinceCheck map[string]int             // rows written per webhook since its backlog was last looked at
	underway   map[string]int             // rows per webhook that publishes under way are writing
	wanted     map[string]bool            // see RequestSpill
	at         storedriver.SpillThreshold // see SpillWhenPending
}

// NewSpillPolicy returns a policy that starts spills only on request.
func NewSpillPolicy() *SpillPolicy {
	return &SpillPolicy{sinceCheck: map[string]int{}, underway: map[string]int{}, wanted: map[string]bool{}}
}

// SpillWhenPending sets the backlog at which publishing spills a webhook; the zero
// SpillThreshold turns the check off.
func (p *SpillPolicy) SpillWhenPending(t storedriver.SpillThreshold) {
	p.mu.Lock()
	p.at = storedriver.SpillThreshold{Due: max(t.Due, 0), DueFor: max(t.DueFor, 0), Pending: max(t.Pending, 0)}
	p.mu.Unlock()
}

// RequestSpill asks for webhooks to be spilled by the next publish: applied inside the
// transaction that would otherwise write their rows, it costs no transaction of its own.
func (p *SpillPolicy) RequestSpill(webhookIDs []string) {
	if len(webhookIDs) == 0 {
		return
	}
	p.mu.Lock()
	for _, id := range webhookIDs {
		p.wanted[id] = true
	}
	p.mu.Unlock()
}

// Underway notes the delivery rows a publish is about to write, per webhook, until the
// returned func is called (once it has written them or given up).
func (p *SpillPolicy) Underway(ds []*models.Delivery) (done func()) {
	if len(ds) == 0 {
		return func() {}
	}
	counts := map[string]int{}
	for _, d := range ds {
		counts[d.WebhookID]++
	}
	p.mu.Lock()
	for id, n := range counts {
		p.underway[id] += n
	}
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			for id, n := range counts {
				if p.underway[id] -= n; p.underway[id] <= 0 {
					delete(p.underway, id)
				}
			}
		})
	}
}

// WroteRows notes the delivery rows a publish writes, per webhook.
func (p *SpillPolicy) WroteRows(ds []*models.Delivery) {
	if len(ds) == 0 {
		return
	}
	p.mu.Lock()
	for _, d := range ds {
		p.sinceCheck[d.WebhookID]++
	}
	p.mu.Unlock()
}

// Backlog is what a look at a webhook's backlog found, counting at most BacklogCheck.Limit of
// its pending deliveries.
type Backlog struct{ Pending, Due int }

// BacklogCheck is the look at backlogs that a publish makes: the webhooks (in id order) whose
// rows written since their last look reached the threshold, the pending deliveries to count of
// each (those scheduled to go first), and the time before which a delivery counts as due (Unix
// milliseconds).
type BacklogCheck struct {
	IDs       []string
	Limit     int
	DueBefore int64
}

// Asked reports whether a spill was asked for (RequestSpill) that no publish has started yet.
func (p *SpillPolicy) Asked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.wanted) > 0
}

// LookEvery is the rows a webhook gets between looks at its backlog (0: no looks).
func (p *SpillPolicy) LookEvery() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.checkEvery()
}

// checkEvery is the rows a webhook gets between looks at its backlog (0: no looks); p.mu held.
func (p *SpillPolicy) checkEvery() int {
	every := p.at.Due
	if every == 0 || p.at.Pending > 0 && p.at.Pending < every {
		every = p.at.Pending
	}
	return every
}

// TakeChecks returns the backlogs the publish about to run should look at, and starts those
// webhooks' counts of rows written afresh.
func (p *SpillPolicy) TakeChecks() BacklogCheck {
	p.mu.Lock()
	at := p.at
	every := p.checkEvery()
	var ids []string
	look := func(id string) {
		if every > 0 && p.sinceCheck[id]+p.underway[id] >= every {
			delete(p.sinceCheck, id)
			if !p.wanted[id] {
				ids = append(ids, id)
			}
		}
	}
	for id := range p.sinceCheck {
		look(id)
	}
	for id := range p.underway {
		if !slices.Contains(ids, id) {
			look(id)
		}
	}
	p.mu.Unlock()
	slices.Sort(ids)
	return BacklogCheck{IDs: ids, Limit: max(at.Due, at.Pending), DueBefore: time.Now().Add(-at.DueFor).UnixMilli()}
}

// Unlook gives back looks that TakeChecks handed out and the publish did not make: the next
// publish's TakeChecks hands them out again.
func (p *SpillPolicy) Unlook(webhookIDs []string) {
	if len(webhookIDs) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	every := p.checkEvery()
	for _, id := range webhookIDs {
		p.sinceCheck[id] = max(p.sinceCheck[id], every)
	}
}

// Decide returns, sorted by id, the webhooks not in spilled that a publish should spill: those
// asked for, and those whose backlog found reaches the threshold. Concurrent publishes on
// PostgreSQL start the spills they find in this one order, so two of them never wait for each
// other's spill rows in opposite orders.
func (p *SpillPolicy) Decide(found map[string]Backlog, spilled map[string]bool) []string {
	var out []string
	p.mu.Lock()
	at := p.at
	for id := range p.wanted {
		if !spilled[id] {
			out = append(out, id)
		}
	}
	clear(p.wanted)
	underway := make(map[string]int, len(found))
	for id := range found {
		underway[id] = p.underway[id]
	}
	p.mu.Unlock()
	for id, n := range found {
		pending := n.Pending + underway[id]
		if !spilled[id] && !slices.Contains(out, id) && (at.Due > 0 && n.Due >= at.Due || at.Pending > 0 && pending >= at.Pending) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// ToSpill is TakeChecks, a look at each backlog in the publish running tx (the oldest
// deliveries first: among them are those due for longest), and Decide.
func (p *SpillPolicy) ToSpill(tx *gorm.DB, spilled map[string]bool) ([]string, error) {
	check := p.TakeChecks()
	found := make(map[string]Backlog, len(check.IDs))
	for _, id := range check.IDs {
		if spilled[id] {
			continue
		}
		var n []Backlog
		if err := tx.Raw(`SELECT COUNT(*) AS pending, COUNT(*) FILTER (WHERE next_attempt_at <= ?) AS due
			FROM (SELECT next_attempt_at FROM deliveries WHERE webhook_id = ? AND status = 'pending'
				ORDER BY next_attempt_at LIMIT ?) AS backlog`, check.DueBefore, id, check.Limit).Scan(&n).Error; err != nil {
			return nil, fmt.Errorf("webhook backlog: %w", err)
		}
		if len(n) == 1 {
			found[id] = n[0]
		}
	}
	return p.Decide(found, spilled), nil
}

// OwedDeliveryID is the id of the delivery of an owed event to a webhook: NewID's form, with
// the event id's time and sub-millisecond order and, in place of the random bits, a hash of
// the pair. So an owed delivery is shown under the id its row will have, taking the same
// event twice (SQLite, only after a failed record) still makes one row, and it sorts like its
// event, which is also what retention goes by.
func OwedDeliveryID(eventID, webhookID string) string {
	sum := sha256.Sum256([]byte(eventID + "/" + webhookID))
	if len(eventID) != 36 {
		return "dlv_" + hex.EncodeToString(sum[:16]) // not NewID's form; still one id per pair
	}
	return "dlv_" + eventID[4:20] + hex.EncodeToString(sum[:8])
}

// WebhooksEnabled reads whether each of the webhooks that cond and arg select (Hooks.IDsIn)
// is enabled; a deleted one is absent. The record of taken deliveries asks, as their rows
// depend on it (TakenRowState).
func WebhooksEnabled(tx *gorm.DB, cond string, arg any) (map[string]bool, error) {
	var states []struct {
		ID      string
		Enabled bool
	}
	if err := tx.Raw(`SELECT id, enabled FROM webhooks WHERE `+cond, arg).Scan(&states).Error; err != nil {
		return nil, err
	}
	enabled := make(map[string]bool, len(states))
	for _, st := range states {
		enabled[st.ID] = st.Enabled
	}
	return enabled, nil
}

// TakenRowState is the status and next attempt a taken delivery's row is written with when
// its attempt is recorded: the result's, cancelled if its webhook was disabled while it was in
// flight (like the webhook's pending rows), and no next attempt unless it is still pending.
func TakenRowState(r models.Result, webhookEnabled bool) (status string, next int64) {
	switch {
	case !webhookEnabled:
		return models.StatusCancelled, 0
	case r.Status != models.StatusPending:
		return r.Status, 0
	}
	return r.Status, r.NextAttemptAt
}

// BacklogOf is a spilled webhook's Backlog as Backlogs returns it: what it owes only when
// counted.
func BacklogOf(since time.Time, owed int64, counted bool) *storedriver.Backlog {
	b := &storedriver.Backlog{SpilledSince: since}
	if counted {
		b.OwedEvents = &owed
	}
	return b
}
