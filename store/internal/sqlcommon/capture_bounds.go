package sqlcommon

import (
	"sync"

	"github.com/hookrelay/hookrelay/models"
)

// captureBounds decides when a bin's captures beyond its bound are deleted. Deleting them in
// every capture transaction costs a walk to the keep-th newest capture and a delete at the
// far end of the bin's rows, as much as the insert itself when a busy bin's transactions
// hold a capture or two each. So a bin is bounded once this process has stored more than a
// tenth of keep in it since it last did (or on its first capture since the process started):
// it holds at most keep plus a tenth per writing process (plus, on PostgreSQL, what arrives
// while a bound queued after a write waits to run), and ListCaptures hides the excess.
type captureBounds struct {
	mu    sync.Mutex
	since map[string]int // bin → captures stored since this process last bounded it
}

// slack is how many captures beyond keep a bin may hold between bounds; below 10 there is
// none, so small bounds stay exact.
func slack(keep int) int { return keep / 10 }

// due lists the bins of cs (their distinct ids, in bins) that the transaction storing cs
// must bound.
func (b *captureBounds) due(cs []*models.Capture, bins []string, keep int) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var due []string
	for _, bin := range bins {
		n := 0
		for _, c := range cs {
			if c.BinID == bin {
				n++
			}
		}
		since, seen := b.since[bin]
		if !seen || since+n > slack(keep) {
			due = append(due, bin)
		}
	}
	return due
}

// stored records a committed transaction: the bins it bounded start counting afresh.
func (b *captureBounds) stored(cs []*models.Capture, due []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.since == nil {
		b.since = map[string]int{}
	}
	for _, c := range cs {
		b.since[c.BinID]++
	}
	for _, bin := range due {
		b.since[bin] = 0
	}
}

// forget drops a deleted bin: a new bin with its id starts unbounded-since-start.
func (b *captureBounds) forget(bin string) {
	b.mu.Lock()
	delete(b.since, bin)
	b.mu.Unlock()
}
