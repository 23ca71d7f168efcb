// Package sqlite is Hookrelay's store on one SQLite file, owned by one process.
//
// Owning the file is what its machinery builds on. Writes go through one connection whose
// transactions start IMMEDIATE, so writers queue in Go instead of failing with SQLITE_BUSY,
// while WAL lets a pool of readers run beside it; a background checkpointer keeps the WAL
// out of the writer's commits (checkpoint.go). Claims lease deliveries in memory and write
// nothing (leases.go, claim.go). Publishes fan out from a cached list of subscribers
// (subscribers.go). A webhook that falls behind is spilled: it owes the events after a
// position instead of getting a row per event (spill.go, take.go, owed_view.go).
//
// The statements it shares with PostgreSQL are in store/internal/sqlcommon; this package
// supplies the parts that differ through sqlcommon.Hooks (hooks.go).
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"

	gormsqlite "github.com/glebarez/sqlite"
	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"github.com/hookrelay/hookrelay/store/sqlite/internal/stmtcache"
	"github.com/hookrelay/hookrelay/store/sqlite/internal/walbuf"
	"github.com/hookrelay/hookrelay/store/storedriver"
	"gorm.io/gorm"
)

// Driver is the SQLite store. It implements storedriver.Driver.
type Driver struct {
	*sqlcommon.Base
	lock *os.File // see lockFile

	// leases are the claims, held in memory (see claim.go).
	leases *memLeases
	// subs caches the enabled webhooks for Publish: every webhook write goes through this
	// process.
	subs subscriberCache
	// spills is when publishes start spills (spill.go).
	spills *sqlcommon.SpillPolicy
	// takes is what this process took of each spill without rows yet (take.go).
	takes owedTracks
	// checkpoints folds the WAL into the file in the background.
	checkpoints *checkpointer
	// writer is the one writer connection's pool, for the transactions that skip gorm.
	writer *sql.DB
	// bins are the bins captures may be written to without looking (capture.go).
	bins knownBins
}

var _ storedriver.Driver = (*Driver)(nil)

// Open opens (creating it if need be) the database file at path and migrates it.
func Open(ctx context.Context, path string) (*Driver, error) {
	if path == "" {
		return nil, fmt.Errorf("empty database path")
	}
	lock, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	d, err := open(ctx, path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	d.lock = lock
	return d, nil
}

func open(ctx context.Context, path string) (*Driver, error) {
	q := url.Values{}
	// A new file gets 8 KiB pages: every commit writes each page it dirtied to the WAL
	// (and later to the file) with its own system calls, and a delivery's rows and index
	// entries fill fewer, larger pages. Measured on the record and publish benchmarks:
	// about 25% faster than 4 KiB, and as fast as 16 KiB. An existing file keeps its
	// page size (WAL mode cannot change it), which only forgoes the gain.
	q.Add("_pragma", "page_size(8192)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(0)")
	q.Add("_pragma", "temp_store(MEMORY)")
	// The writer keeps a large page cache: every publish and record modifies the queue's
	// indexes. Readers serve small indexed lookups; a page cache each of that size would
	// multiply resident memory by the pool size for little gain (the OS caches the file).
	rq := url.Values{}
	for k, v := range q {
		rq[k] = append([]string(nil), v...)
	}
	q.Add("_pragma", "cache_size(-32000)")
	// Checkpoints run beside the writer (checkpoint.go), not inside its commits. The WAL
	// is reused in place when it restarts, and cut back only past 256 MiB.
	q.Add("_pragma", "wal_autocheckpoint(0)")
	q.Add("_pragma", "journal_size_limit(268435456)")
	rq.Add("_pragma", "cache_size(-2000)")
	// The writer's log gathers each commit's frames into one write (internal/walbuf).
	// Readers never write the log.
	if err := walbuf.Register(); err != nil {
		return nil, err
	}
	q.Add("vfs", walbuf.Name)
	wdsn := "file:" + path + "?" + q.Encode() + "&_txlock=immediate"
	rdsn := "file:" + path + "?" + rq.Encode()
	cfg := sqlcommon.GormConfig()
	// Connections come from glebarez/go-sqlite and keep their compiled statements
	// (internal/stmtcache): compiling anew on every execution was an eighth of the CPU.
	w, err := gorm.Open(&gormsqlite.Dialector{DriverName: stmtcache.DriverName, DSN: wdsn}, cfg)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	wdb, err := w.DB()
	if err != nil {
		return nil, err
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	r, err := gorm.Open(&gormsqlite.Dialector{DriverName: stmtcache.DriverName, DSN: rdsn}, cfg)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	rdb, err := r.DB()
	if err != nil {
		wdb.Close()
		return nil, err
	}
	rdb.SetMaxOpenConns(8)
	rdb.SetMaxIdleConns(8)
	d := &Driver{leases: newMemLeases(), spills: sqlcommon.NewSpillPolicy(),
		takes: owedTracks{byHook: map[string]*owedTrack{}}, writer: wdb}
	d.Base = sqlcommon.New(w, r, []*sql.DB{wdb, rdb}, hooks{d})
	d.checkpoints = startCheckpointer(wdb, rdb, checkpointEvery, walRestartBytes)
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

// IsPostgres is false: this is SQLite.
func (d *Driver) IsPostgres() bool { return false }

// SpillSupported is true: one writer gives events their rowids in commit order, which is
// what a spill position needs (see spill.go).
func (d *Driver) SpillSupported() bool { return true }

// LeaseAtPublish is supported: the publish writes the lease into the rows it inserts, as on
// PostgreSQL. A claim's leases live in memory (leases.go), but its read of the rows passes
// over any whose lease in the row holds, and a rescan finds them again once it runs out;
// start-up releases those a crash left. At one event per request nearly every event paid
// for a claim of its own before: two reads and a query for the next due time.
func (d *Driver) LeaseAtPublish(l storedriver.Lessee) bool {
	d.SetLessee(l)
	return true
}

// Close stops the checkpointer and closes the pools; closing the last connection
// checkpoints what is left and removes the WAL.
func (d *Driver) Close() error {
	d.checkpoints.close()
	err := d.Base.Close()
	if d.lock != nil {
		d.lock.Close()
	}
	return err
}

// Notify does nothing: there is one process, and it is told through OnQueued.
func (d *Driver) Notify(ctx context.Context, channel, payload string) error { return nil }

// Listen waits for ctx: no other process sends notifications.
func (d *Driver) Listen(ctx context.Context, channel string, fn func(payload string)) { <-ctx.Done() }

// WithJobLock runs fn: no other process runs jobs on this file.
func (d *Driver) WithJobLock(ctx context.Context, key int64, fn func(ctx context.Context) error) (bool, error) {
	return true, fn(ctx)
}
