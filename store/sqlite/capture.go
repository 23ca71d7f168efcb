package sqlite

import (
	"context"
	"fmt"

	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
)

// boundSQL deletes a bin's oldest captures beyond the keep-th newest. Ids sort by time, so
// everything below the keep-th newest id goes; with keep or fewer, the subquery is NULL and
// nothing compares below it.
const boundSQL = `DELETE FROM captures WHERE bin_id = ? AND id < (SELECT id FROM captures WHERE bin_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`

// writeCaptures is SQLite's capture transaction: the bins' check, the insert and a bound per
// due bin, on the writer's connection through database/sql rather than gorm. A group holds
// about ten captures, and gorm's transaction, query builder and statement wrapper cost
// about as much per group as the bins' check: measured, the capture store benchmark's CPU
// fell by 7% and its allocations by a quarter (docs/performance.md).
func (d *Driver) writeCaptures(ctx context.Context, w sqlcommon.CaptureWrite) (found bool, err error) {
	tx, err := d.writer.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil || !found {
			tx.Rollback()
		}
	}()
	bins := make([]any, len(w.Bins))
	for i, b := range w.Bins {
		bins[i] = b
	}
	var n int
	err = tx.QueryRowContext(ctx, "SELECT count(*) FROM bins WHERE id IN ("+placeholders(len(bins))+")", bins...).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check bins: %w", err)
	}
	if n != len(bins) {
		return false, nil // rolled back: nothing was written
	}
	if err := execRows(ctx, tx, "captures", sqlcommon.CaptureCols, len(w.Captures), w.CaptureRow); err != nil {
		return false, err
	}
	for _, bin := range w.Due {
		if _, err := tx.ExecContext(ctx, boundSQL, bin, bin, w.Keep-1); err != nil {
			return false, fmt.Errorf("bound bin: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}
