package sqlite

import (
	"math"
	"sync"
)

// memLeases are the SQLite store's leases, keyed by rowid (what the claim's index read
// yields) with the delivery id bound once the row is read. A claim reads from a WAL snapshot
// taken when its query starts, so a delivery whose result was committed and released after
// that moment may still look due to it; a release therefore leaves a tombstone stamped with a
// sequence number, and a claim that began before the stamp treats the row as still leased.
// Tombstones go once no claim is running.
type memLeases struct {
	mu      sync.Mutex
	held    map[int64]*memLease // rowid → lease or tombstone
	byID    map[string]int64    // delivery id → rowid
	perHook map[string]int      // webhook id → entries in held
	seq     uint64              // releases so far
	tombs   []int64             // rowids released while a claim ran
	active  int                 // claims running
	cursors map[string]claimCursor
	rewinds uint64 // rewinds so far
	// oldestUntil is at most the earliest expiry of a lease held (it may be older: released
	// leases are not taken out of it); past it, begin looks for leases that ran out.
	oldestUntil int64
}

// claimCursor is where a webhook's next claim starts reading: just past the last row taken.
// Rows before it are taken (in flight, or awaiting their record), finished, or leased out
// by a lease that ran out; work that becomes due before it (a publish that committed late, a
// retry, a redelivery) rewinds it, and so does the periodic rescan, which finds run-out
// leases.
type claimCursor struct {
	next  int64 // next_attempt_at
	rowid int64
}

type memLease struct {
	id        string // "" until the claim read the row
	webhookID string
	until     int64  // unix ms
	released  uint64 // 0 while held; else the release's sequence number
}

func newMemLeases() *memLeases {
	return &memLeases{held: map[int64]*memLease{}, byID: map[string]int64{}, perHook: map[string]int{},
		cursors: map[string]claimCursor{}, oldestUntil: math.MaxInt64}
}

// begin starts a claim at now and returns the release sequence it must respect.
func (l *memLeases) begin(now int64) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active == 0 {
		for _, rowid := range l.tombs {
			if e := l.held[rowid]; e != nil && e.released != 0 {
				l.drop(rowid, e)
			}
		}
		l.tombs = l.tombs[:0]
	}
	if now > l.oldestUntil {
		// A lease ran out (its result was never recorded): its row lies behind the
		// webhook's cursor, so the next claim must read from the start again.
		l.oldestUntil = math.MaxInt64
		for _, e := range l.held {
			switch {
			case e.released != 0:
			case e.until < now:
				if _, ok := l.cursors[e.webhookID]; ok {
					delete(l.cursors, e.webhookID)
					l.rewinds++
				}
			default:
				l.oldestUntil = min(l.oldestUntil, e.until)
			}
		}
	}
	l.active++
	return l.seq
}

func (l *memLeases) end() {
	l.mu.Lock()
	l.active--
	l.mu.Unlock()
}

func (l *memLeases) drop(rowid int64, e *memLease) {
	delete(l.held, rowid)
	if e.id != "" && l.byID[e.id] == rowid {
		delete(l.byID, e.id)
	}
	if l.perHook[e.webhookID]--; l.perHook[e.webhookID] <= 0 {
		delete(l.perHook, e.webhookID)
	}
}

// count is how many entries of a webhook a claim may have to read past.
func (l *memLeases) count(webhookID string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perHook[webhookID]
}

type takeOutcome int

const (
	taken takeOutcome = iota
	inFlight
	skippedStale // released after the claim's snapshot was taken
)

// takeOne leases a webhook's candidate row if it is free at now for a claim that began at
// start.
func (l *memLeases) takeOne(webhookID string, rowid int64, start uint64, now, until int64) takeOutcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.held[rowid]; e != nil {
		switch {
		case e.released == 0 && e.until >= now:
			return inFlight
		case e.released > start:
			return skippedStale
		}
		l.drop(rowid, e)
	}
	l.held[rowid] = &memLease{webhookID: webhookID, until: until}
	l.perHook[webhookID]++
	l.oldestUntil = min(l.oldestUntil, until)
	return taken
}

// cursorOf returns a webhook's cursor and the rewind count it was read at.
func (l *memLeases) cursorOf(webhookID string) (claimCursor, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cursors[webhookID], l.rewinds
}

// advance moves a webhook's cursor to c, unless a rewind happened since the claim read the
// cursor (rewinds is what cursorOf returned): then the rewound position stands.
func (l *memLeases) advance(webhookID string, c claimCursor, rewinds uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rewinds == rewinds && c != (claimCursor{}) {
		l.cursors[webhookID] = c
	}
}

// rewind makes a webhook's next claim read from its first due row if the cursor is past at.
func (l *memLeases) rewind(webhookID string, at int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.cursors[webhookID]; ok && at <= c.next {
		delete(l.cursors, webhookID)
		l.rewinds++
	}
}

// rewindAll makes every webhook's next claim read from its first due row.
func (l *memLeases) rewindAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.cursors)
	l.rewinds++
}

// bind records the delivery id of a leased row.
func (l *memLeases) bind(rowid int64, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.held[rowid]; e != nil {
		e.id = id
		l.byID[id] = rowid
	}
}

// forget drops leases taken for rows the claim then did not return.
func (l *memLeases) forget(rowids []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, rowid := range rowids {
		if e := l.held[rowid]; e != nil && e.released == 0 {
			l.drop(rowid, e)
		}
	}
}

// live reports whether a delivery is leased right now.
func (l *memLeases) live(id string, now int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	rowid, ok := l.byID[id]
	if !ok {
		return false
	}
	e := l.held[rowid]
	return e != nil && e.released == 0 && e.until >= now
}

// release ends the leases of deliveries whose results are committed (or that will not be
// attempted).
func (l *memLeases) release(ids []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	for _, id := range ids {
		rowid, ok := l.byID[id]
		if !ok {
			continue
		}
		e := l.held[rowid]
		if e == nil || e.released != 0 {
			continue
		}
		if l.active == 0 {
			l.drop(rowid, e)
		} else {
			e.released = l.seq
			l.tombs = append(l.tombs, rowid)
		}
	}
}
