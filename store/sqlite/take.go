package sqlite

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"github.com/hookrelay/hookrelay/store/storedriver"
	"gorm.io/gorm"
)

// Taking owed events without writing rows for them first.
//
// A take reads a spilled webhook's next owed events and hands them to the dispatcher as
// deliveries that have no row yet (Delivery.Owed). Their row is written once, in its final
// state, by the RecordResults that records the attempt, together with the attempt and the
// spill position: a delivery of a spilled webhook costs one row insert on the writer, not an
// insert, then an update. A take itself is a read.
//
// The position stored in webhook_spills only ever passes events whose rows are written: it
// moves to just before the oldest event still in flight. After a crash, what was in flight
// is owed again and sent again (at-least-once); events whose rows were written past the
// stored position (attempts finish out of order) are recognised by their row and skipped.

// owedTrack is what this process has taken of one webhook's spill.
type owedTrack struct {
	epoch  uint64
	cursor int64          // the newest event taken, or passed because it already had a row
	out    map[int64]bool // events taken and not yet recorded
	// verifyTo is the newest event when this bookkeeping began: up to it, an earlier run
	// (or bookkeeping) may have taken and recorded events past the stored position, so a
	// take looks for their rows. Later events cannot have one.
	verifyTo int64
}

// owedTracks holds the owedTracks of the spilled webhooks.
type owedTracks struct {
	mu     sync.Mutex
	epochs uint64
	byHook map[string]*owedTrack
}

func (s *Driver) forgetTrack(webhookID string) {
	s.takes.mu.Lock()
	delete(s.takes.byHook, webhookID)
	s.takes.mu.Unlock()
}

// forgetEpoch forgets a webhook's bookkeeping if it is still the given one: a take may have
// started a newer one (for a newer spill) since.
func (s *Driver) forgetEpoch(webhookID string, epoch uint64) {
	s.takes.mu.Lock()
	if tr := s.takes.byHook[webhookID]; tr != nil && tr.epoch == epoch {
		delete(s.takes.byHook, webhookID)
	}
	s.takes.mu.Unlock()
}

// TakeSpilled hands out the next owed events of spilled webhooks, oldest first, as
// deliveries to send now. When a webhook has nothing more to take and nothing in flight, its
// spill ends (in a short write), so the next publish writes its rows again and no event falls
// between the two. A webhook that is not spilled gets nothing; one gone or disabled loses its
// spill.
func (s *Driver) TakeSpilled(ctx context.Context, r storedriver.TakeRequest) (map[string]storedriver.SpillTake, error) {
	out := make(map[string]storedriver.SpillTake, len(r.Hooks))
	if len(r.Hooks) == 0 {
		return out, nil
	}
	now := r.Now.UTC()
	for _, want := range r.Wants() {
		got, err := s.takeOwed(ctx, want, now, r.Owner)
		if err != nil {
			return nil, fmt.Errorf("take spilled events: %w", err)
		}
		out[want.WebhookID] = got
	}
	return out, nil
}

// The bodies are not read here: the webhooks of a fan-out take the same events, and the
// dispatcher reads each body once for all of them (its payload cache).
func (s *Driver) takeOwed(ctx context.Context, want storedriver.OwedQuota, now time.Time, owner string) (storedriver.SpillTake, error) {
	var spill []struct {
		AfterSeq int64
		Events   *string
		Enabled  *bool
	}
	db := s.Reader.WithContext(ctx)
	if err := db.Raw(`SELECT sp.after_seq, w.events, w.enabled FROM webhook_spills sp
		LEFT JOIN webhooks w ON w.id = sp.webhook_id WHERE sp.webhook_id = ?`, want.WebhookID).Scan(&spill).Error; err != nil {
		return storedriver.SpillTake{}, err
	}
	if len(spill) == 0 {
		s.forgetTrack(want.WebhookID)
		return storedriver.SpillTake{}, nil
	}
	if spill[0].Enabled == nil || !*spill[0].Enabled {
		return storedriver.SpillTake{}, s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			s.WebhooksChanged()
			return s.dropSpill(tx, want.WebhookID)
		})
	}
	if want.Rows <= 0 {
		return storedriver.SpillTake{Spilled: true}, nil
	}
	types := (&models.Webhook{Events: *spill[0].Events}).EventList()
	after := spill[0].AfterSeq

	s.takes.mu.Lock()
	tr := s.takes.byHook[want.WebhookID]
	fresh := tr == nil || after > tr.cursor
	s.takes.mu.Unlock()
	newest := int64(math.MaxInt64) // when it went away meanwhile: look for rows of every event
	if fresh {
		if err := db.Raw(`SELECT COALESCE(MAX(rowid), 0) FROM events`).Scan(&newest).Error; err != nil {
			return storedriver.SpillTake{}, err
		}
	}
	s.takes.mu.Lock()
	tr = s.takes.byHook[want.WebhookID]
	if tr == nil || after > tr.cursor {
		// New here, or a new spill of the webhook: what an older one had in flight is
		// recorded without moving this one's position.
		s.takes.epochs++
		tr = &owedTrack{epoch: s.takes.epochs, cursor: after, out: map[int64]bool{}, verifyTo: newest}
		s.takes.byHook[want.WebhookID] = tr
	}
	from, verifyTo := tr.cursor, tr.verifyTo
	s.takes.mu.Unlock()

	// One statement, so one snapshot: the spill must still exist in the snapshot that finds
	// the events (an ended spill's later events got rows at publish), and an event that
	// already has a row for the webhook (written past a position a crash left behind) is
	// passed, not sent again.
	rows, err := db.Raw(`SELECT rowid, id, type,
		CASE WHEN rowid <= ? THEN EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id AND d.webhook_id = ?) ELSE 0 END
		FROM events WHERE rowid > MAX(?, COALESCE((SELECT after_seq FROM webhook_spills WHERE webhook_id = ?), 9223372036854775807))
		AND test = ? AND +type IN ? ORDER BY rowid LIMIT ?`,
		verifyTo, want.WebhookID, from, want.WebhookID, false, types, want.Rows).Rows()
	if err != nil {
		return storedriver.SpillTake{}, err
	}
	type owedEvent struct {
		seq       int64
		id, typ   string
		delivered bool
	}
	var found []owedEvent
	for rows.Next() {
		var e owedEvent
		if err := rows.Scan(&e.seq, &e.id, &e.typ, &e.delivered); err != nil {
			rows.Close()
			return storedriver.SpillTake{}, err
		}
		found = append(found, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return storedriver.SpillTake{}, err
	}

	got := storedriver.SpillTake{Spilled: true, More: len(found) == want.Rows}
	s.takes.mu.Lock()
	if s.takes.byHook[want.WebhookID] != tr {
		// The spill ended or was dropped while this read: nothing of it is owed any more.
		s.takes.mu.Unlock()
		return storedriver.SpillTake{}, nil
	}
	for _, e := range found {
		if e.seq <= tr.cursor {
			continue
		}
		tr.cursor = e.seq
		if e.delivered {
			continue
		}
		tr.out[e.seq] = true
		got.Taken = append(got.Taken, &models.Delivery{ID: owedDeliveryID(e.id, want.WebhookID), EventID: e.id, WebhookID: want.WebhookID, EventType: e.typ,
			Status: models.StatusPending, NextAttemptAt: now.UnixMilli(), LockedBy: owner, CreatedAt: now, UpdatedAt: now,
			Owed: &models.OwedDelivery{Seq: e.seq, Epoch: tr.epoch}})
	}
	caughtUp := len(found) < want.Rows && len(tr.out) == 0
	pos, epoch := tr.cursor, tr.epoch
	s.takes.mu.Unlock()
	if !caughtUp {
		return got, nil
	}
	// Nothing more owed and nothing in flight: end the spill (or, if a publish added owed
	// events meanwhile, only store how far it got).
	var ended bool
	err = s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		ended, err = s.settleSpill(tx, want.WebhookID, pos, true)
		return err
	})
	if err != nil {
		return storedriver.SpillTake{}, err
	}
	if ended {
		s.forgetEpoch(want.WebhookID, epoch)
		got.Spilled = false
	}
	return got, nil
}

// owedWhere selects the events a spill owes: after its position (rowid > ?), published (test
// = ?, false) and of the webhook's types (IN ?). The unary + on type keeps SQLite on the
// rowid range (what is owed) instead of the type index, which would visit every event of
// the type.
const owedWhere = `rowid > ? AND test = ? AND +type IN ?`

// settleSpill stores a webhook's spill position (forward only: a newer spill of the same
// webhook starts past anything an older one had taken) and, with tryEnd, ends the spill when
// nothing after the position is owed. It reports whether the spill ended; a webhook gone or
// disabled loses its spill here too.
func (s *Driver) settleSpill(tx *gorm.DB, webhookID string, pos int64, tryEnd bool) (bool, error) {
	if err := tx.Exec(`UPDATE webhook_spills SET after_seq = ? WHERE webhook_id = ? AND after_seq < ?`,
		pos, webhookID, pos).Error; err != nil {
		return false, fmt.Errorf("move spill position: %w", err)
	}
	if !tryEnd {
		return false, nil
	}
	var events []string
	if err := tx.Raw(`SELECT events FROM webhooks WHERE id = ? AND enabled`, webhookID).Scan(&events).Error; err != nil {
		return false, err
	}
	if len(events) == 0 {
		s.WebhooksChanged()
		return true, s.dropSpill(tx, webhookID)
	}
	types := (&models.Webhook{Events: events[0]}).EventList()
	res := tx.Exec(`DELETE FROM webhook_spills WHERE webhook_id = ?
		AND NOT EXISTS (SELECT 1 FROM events WHERE rowid > webhook_spills.after_seq AND test = ? AND +type IN ?)`,
		webhookID, false, types)
	if res.Error != nil {
		return false, fmt.Errorf("end spill: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return false, nil
	}
	s.WebhooksChanged() // the cache holds the spilled set
	return true, nil
}

// owedRecord is RecordResults' part for the deliveries taken without rows: it writes their
// rows (final state, or pending for a retry; cancelled when the webhook was disabled
// meanwhile; none when it was deleted or when the row exists already) and moves each
// webhook's spill position. It returns the ids whose rows it wrote, and what to apply to the
// in-memory bookkeeping once the transaction commits.
func (s *Driver) owedRecord(tx *gorm.DB, rs []models.Result, now time.Time) (map[string]bool, func(), error) {
	written := make(map[string]bool, len(rs))
	var sent []models.Result
	for _, r := range rs {
		if r.Attempt != nil {
			sent = append(sent, r)
		}
	}
	for from := 0; from < len(sent); from += sqlcommon.MaxBulkRows {
		if err := s.insertOwed(tx, sent[from:min(from+sqlcommon.MaxBulkRows, len(sent))], now, written); err != nil {
			return nil, nil, err
		}
	}
	// Per webhook: the position goes to just before the oldest event still in flight once
	// these are recorded, or to the newest taken when none is.
	type settle struct {
		epoch  uint64
		pos    int64
		tryEnd bool
	}
	settles := map[string]settle{}
	done := map[string][]int64{}
	s.takes.mu.Lock()
	for _, r := range rs {
		tr := s.takes.byHook[r.WebhookID]
		if tr != nil && tr.epoch == r.Owed.Epoch {
			done[r.WebhookID] = append(done[r.WebhookID], r.Owed.Seq)
		}
	}
	for id, seqs := range done {
		tr := s.takes.byHook[id]
		recorded := make(map[int64]bool, len(seqs))
		for _, q := range seqs {
			recorded[q] = true
		}
		st := settle{epoch: tr.epoch, pos: tr.cursor, tryEnd: true}
		for q := range tr.out {
			if !recorded[q] && q-1 < st.pos {
				st.pos, st.tryEnd = q-1, false
			}
		}
		settles[id] = st
	}
	s.takes.mu.Unlock()
	ended := map[string]bool{}
	for id, st := range settles {
		e, err := s.settleSpill(tx, id, st.pos, st.tryEnd)
		if err != nil {
			return nil, nil, err
		}
		ended[id] = e
	}
	apply := func() {
		s.takes.mu.Lock()
		defer s.takes.mu.Unlock()
		for id, seqs := range done {
			tr := s.takes.byHook[id]
			if tr == nil || tr.epoch != settles[id].epoch {
				continue // a newer spill's, started after this transaction
			}
			for _, q := range seqs {
				delete(tr.out, q)
			}
			if ended[id] && len(tr.out) == 0 && tr.cursor == settles[id].pos {
				// Kept otherwise: a take since this transaction found a newer spill of the
				// webhook and took from it under this bookkeeping, which now follows that one.
				delete(s.takes.byHook, id)
			}
		}
	}
	return written, apply, nil
}

// insertOwed writes the rows of recorded deliveries that had none and adds the ids it wrote to written. A row that exists already (the same event taken
// twice, after a failed record) is left as it is: owed deliveries have ids derived from their
// event and webhook (owedDeliveryID), so INSERT OR IGNORE finds it on the primary key.
func (s *Driver) insertOwed(tx *gorm.DB, rs []models.Result, now time.Time, written map[string]bool) error {
	var hookIDs []string
	seen := map[string]bool{}
	for _, r := range rs {
		if !seen[r.WebhookID] {
			seen[r.WebhookID] = true
			hookIDs = append(hookIDs, r.WebhookID)
		}
	}
	cond, arg := hooks{}.IDsIn("id", hookIDs)
	enabled, err := sqlcommon.WebhooksEnabled(tx, cond, arg)
	if err != nil {
		return fmt.Errorf("write taken deliveries: %w", err)
	}
	// Rows that differ only in their ids go in one statement: most results of a batch are
	// first attempts that succeeded, taken together, so a batch is a few statements whose
	// shared values are bound once, while each row costs a few JSON reads.
	type groupKey struct {
		webhook, status string
		attempts        int
		next            int64
		code            int
		err             string
		hasErr          bool
		takenAt         time.Time
	}
	groups := map[groupKey]*sqlcommon.JSONRows{}
	var order []groupKey
	for _, r := range rs {
		on, ok := enabled[r.WebhookID]
		if !ok {
			continue // deleted with its webhook: an attempt row would be an orphan
		}
		k := groupKey{webhook: r.WebhookID, attempts: r.Attempt.Number, takenAt: r.TakenAt}
		k.status, k.next = sqlcommon.TakenRowState(r, on)
		if r.Attempt.ResponseStatus != nil {
			k.code = *r.Attempt.ResponseStatus
		}
		if r.Attempt.Error != nil {
			k.err, k.hasErr = *r.Attempt.Error, true
		}
		g := groups[k]
		if g == nil {
			g = sqlcommon.NewJSONRows(128)
			groups[k] = g
			order = append(order, k)
		}
		g.Row()
		g.Str(r.DeliveryID)
		g.Str(r.EventID)
		g.Str(r.EventType)
	}
	for _, k := range order {
		var code, errText any
		if k.code != 0 {
			code = int64(k.code)
		}
		if k.hasErr {
			errText = k.err
		}
		rows, err := tx.Raw(`INSERT OR IGNORE INTO deliveries (id, event_id, webhook_id, event_type, status, attempt_count,
			next_attempt_at, last_status_code, last_error, created_at, updated_at)
			SELECT j.value->>0, j.value->>1, ?, j.value->>2, ?, ?, ?, ?, ?, ?, ? FROM json_each(?) AS j WHERE true
			RETURNING id`, k.webhook, k.status, int64(k.attempts), k.next, code, errText, k.takenAt.UTC(), now,
			groups[k].String()).Rows()
		if err != nil {
			return fmt.Errorf("write taken deliveries: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("write taken deliveries: %w", err)
			}
			written[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("write taken deliveries: %w", err)
		}
	}
	return nil
}

func owedDeliveryID(eventID, webhookID string) string {
	return sqlcommon.OwedDeliveryID(eventID, webhookID)
}

// AbandonOwed is told that deliveries taken without rows will not be recorded (their record
// failed): their webhooks' bookkeeping starts again from the stored position, so the events
// are taken again instead of waiting for a restart.
func (s *Driver) AbandonOwed(webhookIDs []string) {
	for _, id := range webhookIDs {
		s.forgetTrack(id)
	}
}
