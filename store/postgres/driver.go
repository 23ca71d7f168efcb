// Package postgres is Hookrelay's store on PostgreSQL, shared by any number of replicas.
//
// Sharing is what its parts are for. Claims lease deliveries in the locked_until column with
// FOR UPDATE SKIP LOCKED, so replicas claim disjoint rows (claim.go); a publish wakes every
// replica's dispatcher with a NOTIFY sent after its commit (waker.go), and jobs that only one replica should run take
// an advisory lock (notify.go); bulk inserts send each column as one array (insert.go). A
// webhook that falls behind is spilled: each publish lists what it owes in one row instead of
// writing a row per event; takes, which replicas share with SKIP LOCKED, lease those rows, and
// the record of each attempt writes its delivery's row (spill.go, take.go, owed_record.go).
//
// The statements it shares with SQLite are in store/internal/sqlcommon; this package supplies
// the parts that differ through sqlcommon.Hooks (hooks.go).
package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"github.com/hookrelay/hookrelay/store/storedriver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	gormpostgres "gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// Driver is the PostgreSQL store. It implements storedriver.Driver.
type Driver struct {
	*sqlcommon.Base
	dsn     string                 // for the connections LISTEN holds
	spills  *sqlcommon.SpillPolicy // when this process's publishes start spills (spill.go)
	waker   *waker                 // notifies the other replicas of publishes (waker.go)
	bounder *bounder               // bounds bins' captures after they commit (bound.go)
	// abandoned holds the webhooks whose next take gives up this process's leases first
	// (owed_record.go).
	abandoned abandonedSet
	// spilledSeen is the spilled set the last publish read, whose locks the next publish takes
	// before its read (beginPublish); never nil.
	spilledSeen atomic.Pointer[[]string]
	// subscribers is the webhooks the last publish read, for publishes without a
	// transaction (publish_cache.go); nil when there is none to use.
	subscribers atomic.Pointer[subscriberCache]
	// instance names this driver in the wake notifications it sends, so that its own Listen
	// can tell them from other replicas' (waker.go).
	instance string
}

var _ storedriver.Driver = (*Driver)(nil)

// Open connects to the database at dsn (a postgres:// URL) and migrates it.
func Open(ctx context.Context, dsn string) (*Driver, error) {
	return open(ctx, dsn, nil)
}

// open is Open with a tracer of the statements sent (the tests count them), when not nil.
func open(ctx context.Context, dsn string, tracer pgx.QueryTracer) (*Driver, error) {
	cfg := sqlcommon.GormConfig()
	// No process-wide cache of prepared statements: pgx prepares and caches each statement
	// per connection already. gorm's cache prepared a new statement on a connection of its
	// own, and a transaction needing that statement waited for it under the cache's lock; with
	// every connection held by such transactions, the preparation never got one and the pool
	// stalled with all of them idle in transaction (pool_test.go).
	cfg.PrepareStmt = false
	pgCfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	// No JIT compilation unless the DSN asks for it. Hookrelay's statements read and write a
	// few rows each, and compiling one whose estimate passed jit_above_cost (a take's listing
	// of owed events, priced on tables not analyzed yet) took 15–20 ms of a statement that
	// runs in a tenth of a millisecond.
	if _, set := pgCfg.RuntimeParams["jit"]; !set {
		pgCfg.RuntimeParams["jit"] = "off"
	}
	if tracer != nil {
		pgCfg.Tracer = tracer
	}
	db, err := gorm.Open(gormpostgres.New(gormpostgres.Config{Conn: stdlib.OpenDB(*pgCfg, stdlib.OptionAfterConnect(registerBinaryArrays))}), cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(32)
	sqlDB.SetMaxIdleConns(32)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	recorder, recorderDB, err := openRecorder(pgCfg, cfg)
	if err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	d := &Driver{dsn: dsn, spills: sqlcommon.NewSpillPolicy(), instance: models.RandomToken(8)}
	d.spilledSeen.Store(new([]string))
	d.Base = sqlcommon.New(db, db, []*sql.DB{sqlDB}, hooks{d})
	d.SetRecorder(recorder, recorderDB)
	d.waker = newWaker(d.instance, d.Notify)
	d.bounder = newBounder(func(ctx context.Context, bin string, keep int) error {
		return boundCaptures(ctx, d.Writer, bin, keep)
	})
	if err := d.Ping(ctx); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.Migrate(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// openRecorder opens the connections that record transactions run on (see recordPlan): at most
// two, since one recorder writes at a time in a process.
func openRecorder(pgCfg *pgx.ConnConfig, cfg *gorm.Config) (*gorm.DB, *sql.DB, error) {
	recCfg := pgCfg.Copy()
	for k, v := range recordPlan {
		recCfg.RuntimeParams[k] = v
	}
	db, err := gorm.Open(gormpostgres.New(gormpostgres.Config{Conn: stdlib.OpenDB(*recCfg, stdlib.OptionAfterConnect(registerBinaryArrays))}), cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("open postgres: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, nil, err
	}
	sqlDB.SetMaxOpenConns(2)
	sqlDB.SetMaxIdleConns(2)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	return db, sqlDB, nil
}

// Close sends the notifications still queued and runs the bounds queued, then closes the
// connections.
func (d *Driver) Close() error {
	d.waker.close()
	d.bounder.close()
	return d.Base.Close()
}

// IsPostgres is true.
func (d *Driver) IsPostgres() bool { return true }

// SpillSupported is true: see spill.go.
func (d *Driver) SpillSupported() bool { return true }

// LeaseAtPublish is supported: a lease is two columns of the row the publish writes anyway.
func (d *Driver) LeaseAtPublish(l storedriver.Lessee) bool {
	d.SetLessee(l)
	return true
}
