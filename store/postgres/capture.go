package postgres

import (
	"context"
	"strconv"

	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"gorm.io/gorm"
)

// WriteCaptures stores a group of captures in one statement, which commits by itself: the
// bins' check and the insert are parts of it (a data-modifying WITH query), where a transaction
// of their own statements took four round trips (BEGIN, the check, the insert, COMMIT). The
// due bins are bounded after it commits, apart (bound.go).
//
// The check locks the bins it finds (FOR KEY SHARE) until the insert commits. Without the
// lock a bin deleted meanwhile kept the captures of a statement that had seen it: the
// deletion's DELETE FROM captures, in its own snapshot, did not see them yet, and they were
// left where nothing lists or bounds them. With it, a deletion waits for the insert and then
// deletes what it wrote, or the check waits for the deletion and finds the bin gone.
func (h hooks) WriteCaptures(ctx context.Context, db *gorm.DB, w sqlcommon.CaptureWrite) (bool, error) {
	ins, err := pgInsertFor(db.WithContext(ctx), "captures", sqlcommon.CaptureCols)
	if err != nil {
		return false, err
	}
	params, err := ins.arrays(0, len(w.Captures), w.CaptureRow)
	if err != nil {
		return false, err
	}
	n := len(params)
	params = append(params, w.Bins, int64(len(w.Bins)))
	bins, want := "$"+strconv.Itoa(n+1), "$"+strconv.Itoa(n+2)
	q := "WITH found AS (SELECT count(*) AS n FROM (SELECT FROM bins WHERE id = ANY(" + bins + "::text[]) FOR KEY SHARE) AS b), ins AS (" +
		ins.statement + " WHERE (SELECT n FROM found) = " + want + ") SELECT n FROM found"
	var found int64
	if err := db.Statement.ConnPool.QueryRowContext(ctx, q, params...).Scan(&found); err != nil {
		return false, err
	}
	if found != int64(len(w.Bins)) {
		return false, nil
	}
	h.d.bounder.add(w.Due, w.Keep)
	return true, nil
}
