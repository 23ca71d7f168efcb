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
	q := "WITH found AS (SELECT count(*) AS n FROM bins WHERE id = ANY(" + bins + "::text[])), ins AS (" +
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
