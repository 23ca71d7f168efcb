package postgres

import (
	"context"
	"database/sql/driver"

	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// OpenTraced is Open with a tracer that sees every statement sent.
func OpenTraced(ctx context.Context, dsn string, tracer pgx.QueryTracer) (*Driver, error) {
	return open(ctx, dsn, tracer)
}

// SpillLockClass lets the tests hold a spill's lock as a publish in flight does.
const SpillLockClass = spillLockClass

// SpillStartClass lets the tests hold a spill's start as a publish starting it does.
const SpillStartClass = spillStartClass

// LockRecordedSQL is how a record transaction locks its rows, in id order.
const LockRecordedSQL = lockRecordedSQL

// UpdateDeliveredSQL is the statement that records results, as this driver writes it.
func UpdateDeliveredSQL(d *Driver) string { return sqlcommon.UpdateDeliveredSQL(hooks{d}) }

// HealthSQL is how a record writes its webhooks' health, as this driver writes it.
func HealthSQL(d *Driver) string { return sqlcommon.HealthSQL(hooks{d}) }

// TextArray is how the driver binds a list of ids as one parameter.
func TextArray(ss []string) driver.Valuer { return textArray(ss) }

// InsertRowSets writes several tables' rows as a publish does.
func InsertRowSets(tx *gorm.DB, sets []sqlcommon.Rows) error { return insertRowSets(tx, sets) }

// InsertChunk is the most rows one array insert takes.
const InsertChunk = pgInsertChunk

// CollectSQL is how a take lists a spilled webhook's owed events, and OwedChunk the most
// events one listed row holds.
const (
	CollectSQL = collectSQL
	OwedChunk  = owedChunk
)

// UnlistedSQL joins a spill to the owed events no take has listed yet.
const UnlistedSQL = unlistedSQL

// WebhooksAndBacklogsSQL is a publish's read of the webhooks when it looks at backlogs.
const WebhooksAndBacklogsSQL = webhooksAndBacklogsSQL

// BoundCaptures keeps bin to its newest keep captures, as the bounder does after a capture.
func BoundCaptures(ctx context.Context, d *Driver, bin string, keep int) error {
	return boundCaptures(ctx, d.Writer, bin, keep)
}

// BoundPlanSQL is what a bound's transaction runs before its delete.
const BoundPlanSQL = boundPlanSQL

// TryEndSpill is how a take or a record ends a spill that owes nothing.
var TryEndSpill = tryEndSpill

// BinaryArrays is the parameters of empty column arrays of these types, as the driver writes
// them.
func BinaryArrays(pgTypes []string) []any {
	arrays := make([]pgArray, len(pgTypes))
	for i, t := range pgTypes {
		arrays[i] = newPGArray(t, 0)
	}
	return binaryArrays(arrays, pgTypes)
}
