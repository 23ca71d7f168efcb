package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
)

// boundSQL deletes a bin's oldest captures beyond the keep-th newest. Ids sort by time, so
// everything below the keep-th newest id goes; with keep or fewer, the subquery is NULL and
// nothing compares below it.
const boundSQL = `DELETE FROM captures WHERE bin_id = ? AND id < (SELECT id FROM captures WHERE bin_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`

// writeCaptures stores a capture group on the writer's connection through database/sql
// rather than gorm: for a group of about ten captures, gorm's transaction, query builder and
// statement wrapper cost as much as the bins' check (measured, the capture store benchmark's
// CPU fell by 7% and its allocations by a quarter without them; docs/performance.md).
//
// A group whose bins are all known (knownBins) and that bounds none is one INSERT that
// commits by itself, with neither a BEGIN nor the bins' check; any other is a transaction of
// the insert and a bound per due bin, after the check unless its bins are known. The set is
// read while this call holds the one writer connection, on which a bin's deletion forgets it
// before committing, so a known bin still exists when the INSERT runs.
func (d *Driver) writeCaptures(ctx context.Context, w sqlcommon.CaptureWrite) (found bool, err error) {
	conn, err := d.writer.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("writer connection: %w", err)
	}
	defer conn.Close()
	n := len(w.Captures)
	known := d.bins.all(w.Bins)
	if known && len(w.Due) == 0 && n*len(sqlcommon.CaptureCols) <= oneStatementParams {
		if err := execRows(ctx, conn, "captures", sqlcommon.CaptureCols, n, oneStatementParams, w.CaptureRow); err != nil {
			return false, err
		}
		return true, nil
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil || !found {
			tx.Rollback()
		}
	}()
	if !known {
		if found, err = d.checkBins(ctx, tx, w.Bins); !found || err != nil {
			return false, err // rolled back: nothing was written
		}
	}
	if err := execRows(ctx, tx, "captures", sqlcommon.CaptureCols, n, oneStatementParams, w.CaptureRow); err != nil {
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

// checkBins reports whether every bin exists, and makes them known if so: known from then on
// even if tx fails, as the bins exist and no deletion can run until the caller lets go of
// the writer.
func (d *Driver) checkBins(ctx context.Context, tx *sql.Tx, ids []string) (bool, error) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	var have int
	err := tx.QueryRowContext(ctx, "SELECT count(*) FROM bins WHERE id IN ("+placeholders(len(ids))+")", args...).Scan(&have)
	if err != nil {
		return false, fmt.Errorf("check bins: %w", err)
	}
	if have != len(ids) {
		return false, nil
	}
	d.bins.add(ids)
	return true, nil
}

// oneStatementParams bounds the parameters of a capture group's INSERT: 78 captures, more
// than a group holds (maxCaptureGroup in package store), so a group is one statement, which
// commits by itself when nothing else is to be written with it. A larger InsertCaptures is a
// transaction of several.
const oneStatementParams = 1024

// knownBins are bins a capture transaction found in the bins table, so that the groups after
// it need not look again. Only this process writes the file (lockFile) and a bin leaves the
// table only through DeleteBin, whose transaction forgets it (hooks.BinDeleted), so the set
// never holds a bin that is gone for the writer's next statement. It is emptied when it holds
// knownBinsMax, so that bins made and deleted without end cannot grow it.
type knownBins struct {
	mu sync.Mutex
	m  map[string]struct{}
}

const knownBinsMax = 10_000

func (k *knownBins) all(ids []string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, id := range ids {
		if _, ok := k.m[id]; !ok {
			return false
		}
	}
	return true
}

func (k *knownBins) add(ids []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil || len(k.m)+len(ids) > knownBinsMax {
		k.m = make(map[string]struct{})
	}
	for _, id := range ids {
		k.m[id] = struct{}{}
	}
}

func (k *knownBins) forget(id string) {
	k.mu.Lock()
	delete(k.m, id)
	k.mu.Unlock()
}
