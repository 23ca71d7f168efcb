package engine

import (
	"math"
	"slices"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// planInput is what the planner needs beside the webhook states.
type planInput struct {
	Now        time.Time
	Free       int  // global slots free: Workers minus every attempt in flight
	Workers    int  // the global bound; the unproven webhooks share half of it
	PerWebhook int  // no webhook's window exceeds it
	CanSpill   bool // the store spills webhooks (SQLite)
}

// roundPlan is what one round of the claim loop does.
type roundPlan struct {
	// Ready: how many of each webhook's ready work (what takes brought) to start now.
	Ready []store.WebhookQuota
	// Claim: how many due deliveries of each webhook to claim from the store.
	Claim []store.WebhookQuota
	// Spill: webhooks backlogged long enough, or stalled, to be spilled by the next publish.
	Spill []string
	// Backlogged: webhooks whose due work got no slot this round: backlogged from now.
	Backlogged []string
	// Wait is how long until the earliest known due work when there is nothing to do now;
	// noWorkKnown when none is known (the caller bounds it by its rescan).
	Wait time.Duration
}

const noWorkKnown = time.Duration(math.MaxInt64)

// slot is a webhook and how many requests the plan gives it.
type slot struct {
	w *webhook
	n int
}

// plan chooses the webhooks to send for now and how many each: those with work due and free
// slots, within the free global slots, proven webhooks first. It is pure: it reads the
// states and returns a plan, and the caller applies it; hooks' order is the order in which
// webhooks of the same rank get slots.
func plan(hooks []*webhook, in planInput) roundPlan {
	p := roundPlan{Wait: noWorkKnown}
	now := in.Now.UnixMilli()
	if in.CanSpill {
		for _, w := range hooks {
			if !w.backlogSince.IsZero() && !w.spilled && (in.Now.Sub(w.backlogSince) >= spillAfter || w.stalled(in.Now, stallAfter)) {
				p.Spill = append(p.Spill, w.id)
			}
		}
	}
	free := in.Free
	if free <= 0 {
		return p // a finishing attempt wakes the loop
	}
	// Webhooks that are new or failing share half the workers: dead endpoints that hold
	// every request until the timeout must not take the slots a healthy one needs.
	probation := max(1, in.Workers/2)
	for _, w := range hooks {
		if !w.proven {
			probation -= w.inflight
		}
	}
	var proven, unproven []slot
	for _, w := range hooks {
		if !w.due || w.taking && len(w.ready) == 0 {
			continue // nothing due, or the take under way brings its rows
		}
		n := min(int(w.limit), in.PerWebhook) - w.inflight
		if n <= 0 || w.inflight > 0 && n < max(1, int(w.limit)/4) {
			// Saturated, or nearly: a finishing attempt wakes the loop, and waiting for a
			// few slots to free up makes one claim of several rather than several of one.
			continue
		}
		if at := max(w.dueAt, w.restUntil); at > now {
			p.Wait = min(p.Wait, time.Duration(at-now)*time.Millisecond)
			continue
		}
		if w.proven {
			proven = append(proven, slot{w, n})
		} else {
			unproven = append(unproven, slot{w, n})
		}
	}
	var slots []slot
	for _, s := range proven {
		if free == 0 {
			break
		}
		s.n = min(s.n, free)
		free -= s.n
		slots = append(slots, s)
	}
	// An unproven webhook with nothing in flight may always send one request, whatever the
	// dead ones hold: that is how a new healthy webhook proves itself instead of waiting for
	// their timeouts. The rest of the shared half goes to those with the fewest requests in
	// flight.
	slices.SortFunc(unproven, func(a, b slot) int { return a.w.inflight - b.w.inflight })
	rest := make([]slot, 0, len(unproven))
	for _, s := range unproven {
		if free == 0 {
			break
		}
		if s.w.inflight == 0 {
			free--
			probation--
			if s.n--; s.n > 0 {
				rest = append(rest, s)
			}
			slots = append(slots, slot{s.w, 1})
			continue
		}
		rest = append(rest, s)
	}
	for _, s := range rest {
		if free <= 0 || probation <= 0 {
			break
		}
		n := min(s.n, free, probation)
		free -= n
		probation -= n
		if i := slices.IndexFunc(slots, func(x slot) bool { return x.w == s.w }); i >= 0 {
			slots[i].n += n
		} else {
			slots = append(slots, slot{s.w, n})
		}
	}
	if in.CanSpill {
		// Due work that gets no slot now (its window is full, or the shared half is taken)
		// is a backlog too; a claim that empties the webhook's queue clears the mark.
		given := make(map[*webhook]bool, len(slots))
		for _, s := range slots {
			given[s.w] = true
		}
		for _, w := range hooks {
			if !w.due || !w.backlogSince.IsZero() || max(w.dueAt, w.restUntil) > now || w.spilled || given[w] {
				continue
			}
			p.Backlogged = append(p.Backlogged, w.id)
		}
	}
	// What takes brought goes first; the rest of each webhook's share is claimed.
	for _, s := range slots {
		r := min(s.n, len(s.w.ready))
		if r > 0 {
			p.Ready = append(p.Ready, store.WebhookQuota{WebhookID: s.w.id, Free: r})
		}
		if s.n > r {
			p.Claim = append(p.Claim, store.WebhookQuota{WebhookID: s.w.id, Free: s.n - r})
		}
	}
	return p
}
