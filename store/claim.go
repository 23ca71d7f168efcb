package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// HookSlots asks a claim for up to Free due deliveries of one webhook.
type HookSlots struct {
	WebhookID string
	Free      int
}

// ClaimForRequest says which webhooks to claim due deliveries for, and how many of each.
type ClaimForRequest struct {
	Owner string
	Now   time.Time
	Lease time.Duration
	Hooks []HookSlots
}

// ClaimFor leases up to Free due deliveries of each listed webhook, oldest due first. The
// cost follows what is claimed, not the size of the queue: each webhook's due deliveries are
// read from its own index range, so webhooks that are saturated (not listed) cost nothing
// however large their backlog, and a healthy webhook is never stuck behind them.
//
// next reports, for each listed webhook whose due deliveries were all taken (fewer than Free
// were available), when its next pending delivery becomes due (unix ms), or 0 when nothing
// else is pending for it; a listed webhook absent from next may have more due work now.
//
// On SQLite the lease lives in memory (one process owns the file; start-up releases whatever
// a crashed run left), so a claim writes nothing. On PostgreSQL it is the locked_until column,
// taken with FOR UPDATE SKIP LOCKED so replicas claim disjoint rows.
func (s *Store) ClaimFor(ctx context.Context, r ClaimForRequest) ([]*models.Delivery, map[string]int64, error) {
	hooks := make([]HookSlots, 0, len(r.Hooks))
	for _, h := range r.Hooks {
		if h.Free > 0 {
			hooks = append(hooks, h)
		}
	}
	if len(hooks) == 0 {
		return nil, map[string]int64{}, nil
	}
	var claimed []*models.Delivery
	var exhausted []string
	var err error
	if s.IsPostgres() {
		claimed, exhausted, err = s.claimForPostgres(ctx, r, hooks)
	} else {
		claimed, exhausted, err = s.claimForSQLite(ctx, r, hooks)
	}
	if err != nil {
		return nil, nil, err
	}
	next, err := s.nextDueAfter(ctx, exhausted, r.Now.UnixMilli())
	if err != nil {
		return nil, nil, err
	}
	return claimed, next, nil
}

// dueQuery lists one webhook's due deliveries after its claim cursor, from the
// deliveries_webhook_due index alone (it covers the query). Ties in next_attempt_at are
// ordered by rowid in the index, which the cursor relies on.
const dueQuery = `SELECT rowid, next_attempt_at FROM deliveries
	WHERE webhook_id = ? AND status = 'pending' AND next_attempt_at <= ?
		AND next_attempt_at >= ? AND (next_attempt_at > ? OR rowid > ?)
	ORDER BY next_attempt_at LIMIT ?`

func (s *Store) claimForSQLite(ctx context.Context, r ClaimForRequest, hooks []HookSlots) ([]*models.Delivery, []string, error) {
	now := r.Now.UnixMilli()
	until := r.Now.Add(r.Lease).UnixMilli()
	start := s.leases.begin(now)
	defer s.leases.end()
	var picked []int64
	var exhausted []string
	for _, h := range hooks {
		got, more, err := s.claimHookSQLite(ctx, h, start, now, until)
		if err != nil {
			s.leases.forget(picked)
			return nil, nil, err
		}
		picked = append(picked, got...)
		if !more {
			exhausted = append(exhausted, h.WebhookID)
		}
	}
	if len(picked) == 0 {
		return nil, exhausted, nil
	}
	claimed, err := s.leasedRows(ctx, picked, now)
	if err != nil {
		s.leases.forget(picked)
		return nil, nil, err
	}
	if len(claimed) < len(picked) {
		// Gone meanwhile (deleted with the webhook), finished, or leased in the table.
		found := make(map[int64]bool, len(claimed))
		for _, d := range claimed {
			found[d.rowid] = true
		}
		var lost []int64
		for _, id := range picked {
			if !found[id] {
				lost = append(lost, id)
			}
		}
		s.leases.forget(lost)
	}
	out := make([]*models.Delivery, len(claimed))
	for i, c := range claimed {
		s.leases.bind(c.rowid, c.ID)
		c.LockedUntil, c.LockedBy = until, r.Owner
		out[i] = &c.Delivery
	}
	return out, exhausted, nil
}

// claimHookSQLite leases up to h.Free of a webhook's due rows. The scan starts at the
// webhook's cursor, just past the last row a claim took, so the rows taken earlier and still
// in flight or awaiting their record are not read again; it stops as soon as it has enough.
// more reports that due rows may remain.
func (s *Store) claimHookSQLite(ctx context.Context, h HookSlots, start uint64, now, until int64) ([]int64, bool, error) {
	cur, rewinds := s.leases.cursorOf(h.WebhookID)
	// An upper bound: the rows after the cursor still held are at most all held rows.
	limit := h.Free + s.leases.count(h.WebhookID)
	rows, err := s.R.WithContext(ctx).Raw(dueQuery, h.WebhookID, now, cur.next, cur.next, cur.rowid, limit).Rows()
	if err != nil {
		return nil, false, fmt.Errorf("find due deliveries: %w", err)
	}
	defer rows.Close()
	var got []int64
	read, stale := 0, false
	for len(got) < h.Free && rows.Next() {
		var rowid, next int64
		if err := rows.Scan(&rowid, &next); err != nil {
			return nil, false, fmt.Errorf("find due deliveries: %w", err)
		}
		read++
		switch s.leases.takeOne(h.WebhookID, rowid, start, now, until) {
		case taken:
			got = append(got, rowid)
			cur = claimCursor{next: next, rowid: rowid}
		case skippedStale:
			stale = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("find due deliveries: %w", err)
	}
	s.leases.advance(h.WebhookID, cur, rewinds)
	more := len(got) == h.Free || read == limit || stale
	return got, more, nil
}

type leasedRow struct {
	models.Delivery
	rowid int64
}

// leasedRows reads what the dispatcher needs of the deliveries just leased in memory. The
// rowids go as one JSON array parameter (see jsonRows for why not a list of parameters).
func (s *Store) leasedRows(ctx context.Context, rowids []int64, now int64) ([]*leasedRow, error) {
	list := make([]byte, 0, 12*len(rowids)+2)
	list = append(list, '[')
	for i, id := range rowids {
		if i > 0 {
			list = append(list, ',')
		}
		list = strconv.AppendInt(list, id, 10)
	}
	list = append(list, ']')
	rows, err := s.R.WithContext(ctx).Raw(`SELECT rowid, id, event_id, webhook_id, event_type, attempt_count, next_attempt_at
		FROM deliveries WHERE rowid IN (SELECT value FROM json_each(?)) AND status = 'pending' AND locked_until < ?`,
		string(list), now).Rows()
	if err != nil {
		return nil, fmt.Errorf("read claimed deliveries: %w", err)
	}
	defer rows.Close()
	out := make([]*leasedRow, 0, len(rowids))
	for rows.Next() {
		d := &leasedRow{Delivery: models.Delivery{Status: models.StatusPending}}
		if err := rows.Scan(&d.rowid, &d.ID, &d.EventID, &d.WebhookID, &d.EventType, &d.AttemptCount, &d.NextAttemptAt); err != nil {
			return nil, fmt.Errorf("read claimed deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read claimed deliveries: %w", err)
	}
	return out, nil
}

func (s *Store) claimForPostgres(ctx context.Context, r ClaimForRequest, hooks []HookSlots) ([]*models.Delivery, []string, error) {
	now := r.Now.UnixMilli()
	var sb strings.Builder
	args := make([]any, 0, 2*len(hooks)+4)
	sb.WriteString(`WITH picked AS (SELECT d.id FROM (VALUES `)
	for i, h := range hooks {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`(?::text, ?::int)`)
		args = append(args, h.WebhookID, h.Free)
	}
	// SKIP LOCKED inside the lateral subquery: replicas claiming at the same moment take
	// disjoint rows of the same webhook instead of queueing behind each other's row locks.
	sb.WriteString(`) AS h(webhook_id, n) CROSS JOIN LATERAL (
		SELECT id FROM deliveries WHERE webhook_id = h.webhook_id AND status = 'pending'
			AND next_attempt_at <= ? AND locked_until < ?
		ORDER BY next_attempt_at LIMIT h.n FOR UPDATE SKIP LOCKED) d)
	UPDATE deliveries SET locked_until = ?, locked_by = ? FROM picked WHERE deliveries.id = picked.id
	RETURNING deliveries.*`)
	args = append(args, now, now, r.Now.Add(r.Lease).UnixMilli(), r.Owner)
	var claimed []*models.Delivery
	if err := s.W.WithContext(ctx).Raw(sb.String(), args...).Scan(&claimed).Error; err != nil {
		return nil, nil, fmt.Errorf("claim deliveries: %w", err)
	}
	per := map[string]int{}
	for _, d := range claimed {
		per[d.WebhookID]++
	}
	var exhausted []string
	for _, h := range hooks {
		if per[h.WebhookID] >= h.Free {
			continue
		}
		// Short of what was asked: either nothing more is due, or another replica's claim had
		// the rows locked at that moment and SKIP LOCKED passed them. Only the first is
		// exhausted; in the second case the rows it did not take are due again at once, and
		// waiting for the next hint or rescan would leave them idle for up to a second.
		var more []int
		if err := s.W.WithContext(ctx).Raw(`SELECT 1 FROM deliveries WHERE webhook_id = ? AND status = 'pending'
			AND next_attempt_at <= ? AND locked_until < ? LIMIT 1`, h.WebhookID, now, now).Scan(&more).Error; err != nil {
			return nil, nil, fmt.Errorf("claim deliveries: %w", err)
		}
		if len(more) == 0 {
			exhausted = append(exhausted, h.WebhookID)
		}
	}
	return claimed, exhausted, nil
}

// nextDueAfter returns, per webhook, the earliest next_attempt_at of its pending deliveries
// later than now, or 0 when there is none.
func (s *Store) nextDueAfter(ctx context.Context, hooks []string, now int64) (map[string]int64, error) {
	out := make(map[string]int64, len(hooks))
	for _, id := range hooks {
		// Scan, not Row: GORM's Row hands back an empty row, which panics on Scan, when the
		// query fails (a cancelled context at shutdown).
		var next []sql.NullInt64
		err := s.R.WithContext(ctx).Raw(`SELECT MIN(next_attempt_at) FROM deliveries
			WHERE webhook_id = ? AND status = 'pending' AND next_attempt_at > ?`, id, now).Scan(&next).Error
		if err != nil {
			return nil, fmt.Errorf("next due delivery: %w", err)
		}
		out[id] = 0
		if len(next) > 0 && next[0].Valid {
			out[id] = next[0].Int64
		}
	}
	return out, nil
}

// PendingByWebhook returns, for every webhook with pending deliveries, when the earliest of
// them is or was due (unix ms). It costs one index probe per webhook, whatever the backlog,
// so the dispatcher can rescan periodically for work it was not told about.
func (s *Store) PendingByWebhook(ctx context.Context) (map[string]int64, error) {
	var rows []struct {
		ID   string
		Next *int64
	}
	if s.leases != nil {
		// Leases that ran out lie behind the claim cursors: read from the start again.
		s.leases.rewindAll()
	}
	err := s.R.WithContext(ctx).Raw(`SELECT w.id AS id, (SELECT MIN(d.next_attempt_at) FROM deliveries d
		WHERE d.webhook_id = w.id AND d.status = 'pending') AS next FROM webhooks w`).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("pending deliveries by webhook: %w", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		if r.Next != nil {
			out[r.ID] = *r.Next
		}
	}
	return out, nil
}

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

// releaseLeases ends leases in memory (SQLite) after their rows were written.
func (s *Store) releaseLeases(ids []string) {
	if s.leases != nil && len(ids) > 0 {
		s.leases.release(ids)
	}
}

// Queued tells what a commit made due in this process (publish, replay, redelivery).
type Queued struct {
	Due      map[string]int64     // webhook id → earliest due time of its new deliveries (unix ms)
	Payloads map[string]EventBody // event id → its body, for events just published
	Spilled  []string             // webhooks the commit spilled: they owe the events it holds
}

// EventBody is an event's body and the number of deliveries it fans out to (spilled webhooks
// included), which bounds how many attempts will ask for it.
type EventBody struct {
	Payload    []byte
	Deliveries int
}

// OnQueued registers fn to be told, after each commit that queues deliveries, what it
// queued. The dispatcher uses it to know where work is without scanning the queue, and to
// send fresh events without reading their bodies back. fn must not block.
func (s *Store) OnQueued(fn func(Queued)) { s.onQueued.Store(&fn) }

func (s *Store) queued(q Queued) {
	if len(q.Due) == 0 && len(q.Spilled) == 0 {
		return
	}
	if s.leases != nil {
		for id, at := range q.Due {
			s.leases.rewind(id, at)
		}
	}
	if fn := s.onQueued.Load(); fn != nil {
		(*fn)(q)
	}
}
