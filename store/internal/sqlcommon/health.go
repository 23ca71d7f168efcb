package sqlcommon

import (
	"sync"
	"time"
)

// healthMarks remembers, for each webhook, the health this process last wrote to its row and
// when, so that a record does not send a statement that would change nothing.
//
// A record ends with a webhook's health: a success clears failing_since and refreshes
// last_success_at (at most once a second), a failure sets failing_since if it is not set. Most
// records find the row as they would leave it, but on PostgreSQL each check was still a
// statement, one of a record's eight round trips. Within healthWindow of writing a state, a
// record of the same state skips it. What that gives up: a change made meanwhile by another
// replica (a failure there, a success here) shows up to healthWindow late, as
// last_success_at already did. A change through this store (WebhooksChanged) forgets every
// mark.
type healthMarks struct {
	mu    sync.Mutex
	marks map[string]healthMark
}

type healthMark struct {
	ok bool
	at time.Time
}

// healthWindow is how long a written state stands for the row's.
const healthWindow = time.Second

// current reports whether this process wrote ok as webhookID's health less than healthWindow
// before now.
func (h *healthMarks) current(webhookID string, ok bool, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	m, found := h.marks[webhookID]
	return found && m.ok == ok && now.Sub(m.at) < healthWindow && !now.Before(m.at)
}

// wrote records health written to webhooks' rows at now, after its transaction committed.
func (h *healthMarks) wrote(states map[string]bool, now time.Time) {
	if len(states) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.marks == nil || len(h.marks) > 4096 { // deleted webhooks' marks go in time
		old := h.marks
		h.marks = make(map[string]healthMark, len(states))
		for id, m := range old {
			if now.Sub(m.at) < healthWindow {
				h.marks[id] = m
			}
		}
	}
	for id, ok := range states {
		h.marks[id] = healthMark{ok: ok, at: now}
	}
}

// forget drops every mark.
func (h *healthMarks) forget() {
	h.mu.Lock()
	h.marks = nil
	h.mu.Unlock()
}
