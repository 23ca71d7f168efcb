package engine

import (
	"slices"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// Leasing at publish. A publish asks the dispatcher of its own process, before writing, how
// many of its new deliveries it takes now; those rows are written leased to it and handed
// over after the commit, so they start without a claim. A claim is the heaviest statement on
// an event's path on PostgreSQL, and two reads and a query on SQLite; at the rates one event
// per request arrives, most events would pay for one of their own.
//
// Only deliveries that would be claimed at once anyway are taken (table.reserve): the
// webhook is proven, has free slots, and nothing of its own waits before them. The rest are
// written pending and claimed as before (or owed, for a spilled webhook). A leased row is
// like a claimed one: if the process dies before recording it, the lease runs out and any
// replica attempts it again (SQLite's restart releases it at once).
//
// Where the store marks owed events one by one (PostgreSQL), a spilled webhook that keeps up
// (room in its window, no taken work waiting) is granted slots too, so a spill started by a
// moment's backlog stops costing every event a take; the take asked for with the grant ends
// the spill once nothing owed is left or in flight.

// lessee is the dispatcher as the store sees it (store.Lessee).
type lessee struct{ d *Dispatcher }

func (l lessee) Reserve(want map[string]int, now time.Time) (map[string]int, string, int64) {
	granted, askedTake := l.d.table.reserve(want, now, l.d.cfg.Workers)
	if askedTake {
		l.d.spill.wake()
	}
	if granted == nil {
		return nil, "", 0
	}
	return granted, l.d.owner, now.Add(l.d.cfg.Lease).UnixMilli()
}

func (l lessee) Release(granted map[string]int) {
	l.d.table.unreserve(granted)
	l.d.table.grants.Done()
}

// Leased takes over the deliveries a commit leased to this dispatcher; the loop starts them.
func (l lessee) Leased(ds []*models.Delivery) {
	d := l.d
	d.handMu.Lock()
	d.handed = append(d.handed, ds...)
	d.handMu.Unlock()
	d.table.grants.Done()
	d.nudge()
	if d.cfg.Changes != nil {
		// Admins see the webhook's queue change as for any publish (its Queued.Due may not
		// name it: all it got was leased).
		var ids []string
		for _, dl := range ds {
			if !slices.Contains(ids, dl.WebhookID) {
				ids = append(ids, dl.WebhookID)
			}
		}
		d.cfg.Changes.WebhooksChanged(ids)
	}
}

func (d *Dispatcher) takeHanded() []*models.Delivery {
	d.handMu.Lock()
	defer d.handMu.Unlock()
	h := d.handed
	d.handed = nil
	return h
}
