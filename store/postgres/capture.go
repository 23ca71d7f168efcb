package postgres

import (
	"context"
	"strconv"
	"strings"

	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"gorm.io/gorm"
)

// WriteCaptures stores a group of captures in one statement: the bins' check, the insert and
// the due bins' bounds are parts of it (data-modifying WITH queries), where a transaction of
// their own statements took five round trips (BEGIN, the check, the insert, a bound, COMMIT).
// A group that bounds no bin, most of them, is that statement alone, committed by itself; one
// that does runs it in a transaction that first settles the bound's plan (boundPlanSQL).
//
// The parts of one statement share its snapshot, so a bound does not see the rows the
// insert adds: it walks the bin's stored ids and the new ones together, and deletes the
// stored rows older than the keep-th newest of them all. (A new capture older than that, one
// created in the same millisecond as stored ones and sorting below them, is left to the
// bin's next bound, which finds it stored.)
func (hooks) WriteCaptures(ctx context.Context, db *gorm.DB, w sqlcommon.CaptureWrite) (bool, error) {
	ins, err := pgInsertFor(db.WithContext(ctx), "captures", sqlcommon.CaptureCols)
	if err != nil {
		return false, err
	}
	params, err := ins.arrays(0, len(w.Captures), w.CaptureRow)
	if err != nil {
		return false, err
	}
	param := func(v any) string {
		params = append(params, v)
		return "$" + strconv.Itoa(len(params))
	}
	var sb strings.Builder
	bins, want := param(w.Bins), param(int64(len(w.Bins)))
	sb.WriteString("WITH found AS (SELECT count(*) AS n FROM bins WHERE id = ANY(" + bins + "::text[])), ins AS (")
	sb.WriteString(ins.statement + " WHERE (SELECT n FROM found) = " + want + ")")
	if len(w.Due) > 0 {
		offset := param(int64(w.Keep - 1))
		for i, bin := range w.Due {
			var added []string
			for _, c := range w.Captures {
				if c.BinID == bin {
					added = append(added, c.ID)
				}
			}
			b, a := param(bin), param(added)
			sb.WriteString(", bound" + strconv.Itoa(i) + " AS (DELETE FROM captures WHERE bin_id = " + b +
				" AND id < (SELECT id FROM (SELECT id FROM captures WHERE bin_id = " + b + " UNION ALL SELECT unnest(" + a +
				"::text[])) AS k (id) ORDER BY id DESC LIMIT 1 OFFSET " + offset + ") AND (SELECT n FROM found) = " + want + ")")
		}
	}
	sb.WriteString(" SELECT n FROM found")
	var found int64
	if len(w.Due) == 0 {
		// On the pool, outside a transaction: the statement commits by itself.
		if err := db.Statement.ConnPool.QueryRowContext(ctx, sb.String(), params...).Scan(&found); err != nil {
			return false, err
		}
		return found == int64(len(w.Bins)), nil
	}
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(boundPlanSQL).Error; err != nil {
			return err
		}
		return tx.Statement.ConnPool.QueryRowContext(ctx, sb.String(), params...).Scan(&found)
	})
	return err == nil && found == int64(len(w.Bins)), err
}

// boundPlanSQL makes a bound walk a bin's key index in order (an index scan) rather than
// collect the bin's rows by a bitmap and sort them, which is the plan the planner prices
// lowest for a table it estimates small (one never analysed, or analysed while young). A
// bitmap scan visits every index entry of the bin, those of the rows earlier bounds deleted
// included, until a vacuum removes them: over 40,000 captures at a few thousand a second and
// no vacuum, a bound took 6.8 ms on average, against 1.9 to 2.6 ms walking the index, whose
// scans mark the dead entries they meet so that later ones skip them (statement census,
// docs/performance.md). The setting lasts until the transaction ends; the statement's
// generic plan is made under it too, since it runs in no other way.
const boundPlanSQL = `SELECT set_config('enable_bitmapscan', 'off', true)`
