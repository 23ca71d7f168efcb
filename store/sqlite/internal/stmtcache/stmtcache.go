// Package stmtcache registers a database/sql driver for SQLite that keeps each connection's
// prepared statements between executions.
//
// The SQLite driver Hookrelay is built on (glebarez/go-sqlite, through gorm's glebarez
// dialector) compiles every statement anew on every execution, prepared statements of
// database/sql included: its statement object holds only the SQL text. Compiling is parsing
// plus query planning, and on the delivery path's statements it costs 15 to 90 µs each. In the
// single-publish and inspector benchmarks that was 12 to 15% of all CPU (docs/performance.md).
//
// This driver opens every connection through glebarez/go-sqlite, so the DSN, its pragmas,
// transactions and time format stay that driver's, then runs single statements on the same
// SQLite handle through the library's C API (modernc.org/sqlite/lib), compiling each distinct
// SQL text once per connection. Anything it does not handle (several statements in one text,
// named parameters, a statement that does not compile) goes to the glebarez connection, which
// also reports its errors. Values are bound and read as glebarez/go-sqlite does (bind.go,
// rows.go), so a row reads the same whichever path wrote it.
//
// The handle is a private field of the glebarez connection, found by reflection (handleOf). If
// a new version of that driver lays its connection out differently, connections are plain
// glebarez ones again: slower, never wrong, and TestStatementsAreCompiledOncePerConnection
// fails.
package stmtcache

import (
	"container/list"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unsafe"

	// The driver whose connections this one opens (it registers itself as "sqlite").
	_ "github.com/glebarez/go-sqlite"
	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// DriverName is the name this package registers with database/sql.
const DriverName = "sqlite-stmtcache"

// perConn bounds the statements a connection keeps. The store's distinct texts are a few
// dozen, plus one per row count of its multi-row inserts; least recently used ones go first.
const perConn = 256

func init() { sql.Register(DriverName, &sqliteDriver{}) }

type sqliteDriver struct {
	once  sync.Once
	inner driver.Driver
}

// innerConn is what the glebarez connection implements and this one delegates to.
type innerConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ExecerContext
	driver.QueryerContext
	driver.ConnPrepareContext
	driver.Pinger
}

func (d *sqliteDriver) Open(dsn string) (driver.Conn, error) {
	d.once.Do(func() {
		db, err := sql.Open("sqlite", "")
		if err == nil {
			d.inner = db.Driver()
			db.Close()
		}
	})
	if d.inner == nil {
		return nil, fmt.Errorf("stmtcache: the sqlite driver is not registered")
	}
	ic, err := d.inner.Open(dsn)
	if err != nil {
		return nil, err
	}
	inner, ok := ic.(innerConn)
	if !ok {
		return ic, nil
	}
	db, tls, ok := handleOf(ic)
	if !ok {
		return ic, nil
	}
	if err := stablePlans(db, tls); err != nil {
		ic.Close()
		return nil, err
	}
	return &conn{inner: inner, db: db, tls: tls, itls: libc.NewTLS(), cache: map[string]*list.Element{}, lru: list.New()}, nil
}

// handleOf finds the sqlite3 handle of a glebarez connection and the libc thread state its
// calls use. database/sql hands a connection to one goroutine at a time, so this package's
// calls never overlap the glebarez connection's own.
func handleOf(c driver.Conn) (db uintptr, tls *libc.TLS, ok bool) {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return 0, nil, false
	}
	s := v.Elem()
	fdb, ftls := s.FieldByName("db"), s.FieldByName("tls")
	if !fdb.IsValid() || fdb.Kind() != reflect.Uintptr || !ftls.IsValid() || ftls.Type() != reflect.TypeFor[*libc.TLS]() {
		return 0, nil, false
	}
	tls = reflect.NewAt(ftls.Type(), unsafe.Pointer(ftls.UnsafeAddr())).Elem().Interface().(*libc.TLS)
	if fdb.Uint() == 0 || tls == nil {
		return 0, nil, false
	}
	return uintptr(fdb.Uint()), tls, true
}

// stablePlans turns on SQLite's query planner stability guarantee. This SQLite is built with
// STAT4, so the planner notes which parameters' values could change a plan (an equality ahead
// of an ORDER BY, a LIMIT ?), and binding a new value to one of them recompiles the statement
// at its next step: 4% of the single-publish phase's CPU went to such recompiles of the claims'
// and takes' queries. With the guarantee, plans do not depend on bound values, and a kept
// statement stays compiled. The store runs no ANALYZE, so no plan had statistics to lose.
func stablePlans(db uintptr, tls *libc.TLS) error {
	va := libc.NewVaList(int32(1), uintptr(0))
	defer libc.Xfree(tls, va)
	if rc := sqlite3.Xsqlite3_db_config(tls, db, sqlite3.SQLITE_DBCONFIG_ENABLE_QPSG, va); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("stmtcache: enable the query planner stability guarantee: rc %d", rc)
	}
	return nil
}

type conn struct {
	inner innerConn
	db    uintptr
	tls   *libc.TLS

	cache map[string]*list.Element // SQL text → *stmt, most recently used at the front of lru
	lru   *list.List

	// mu guards closed and the interrupts, which come from other goroutines (a context's
	// end); itls is their own thread state.
	mu     sync.Mutex
	closed bool
	itls   *libc.TLS

	prepared int // statements compiled, for the tests
}

// stmt is a compiled statement. While busy (an Exec running or its Rows open) it is not
// handed out again: a second use of the same text meanwhile compiles a statement of its own,
// finalized after use.
type stmt struct {
	p      uintptr
	query  string
	params int
	busy   bool
	cached bool
	allocs []uintptr // bound text and blob values, freed once the statement is reset

	cols     []string // names, and which columns read as times: kept until SQLite recompiles
	times    []bool
	colsOfRe int32 // the recompile count they belong to (-1: not read yet)
}

func (c *conn) Begin() (driver.Tx, error) {
	return c.inner.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner.BeginTx(ctx, opts)
}

func (c *conn) Ping(ctx context.Context) error { return c.inner.Ping(ctx) }

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return &prepared{c: c, query: query}, nil
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return &prepared{c: c, query: query}, nil
}

func (c *conn) Close() error {
	for e := c.lru.Front(); e != nil; e = e.Next() {
		sqlite3.Xsqlite3_finalize(c.tls, e.Value.(*stmt).p)
	}
	c.cache, c.lru = nil, list.New()
	c.mu.Lock()
	c.closed = true
	c.itls.Close()
	c.mu.Unlock()
	return c.inner.Close()
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s := c.acquire(query, args)
	if s == nil {
		return c.inner.ExecContext(ctx, query, args)
	}
	defer c.release(s)
	if err := c.bind(s, args); err != nil {
		return nil, err
	}
	stop := c.interruptOnDone(ctx)
	rc := sqlite3.Xsqlite3_step(c.tls, s.p)
	stop()
	if rc != sqlite3.SQLITE_DONE && rc != sqlite3.SQLITE_ROW {
		return nil, c.errorOf(rc)
	}
	return result{
		changes: int64(sqlite3.Xsqlite3_changes(c.tls, c.db)),
		lastID:  sqlite3.Xsqlite3_last_insert_rowid(c.tls, c.db),
	}, nil
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s := c.acquire(query, args)
	if s == nil {
		return c.inner.QueryContext(ctx, query, args)
	}
	if err := c.bind(s, args); err != nil {
		c.release(s)
		return nil, err
	}
	// The first step runs here: it is where SQLite recompiles a statement the schema changed
	// under, and the columns are read after it.
	r := &rows{c: c, s: s, stop: c.interruptOnDone(ctx)}
	r.first = sqlite3.Xsqlite3_step(c.tls, s.p)
	if r.first != sqlite3.SQLITE_ROW && r.first != sqlite3.SQLITE_DONE {
		err := c.errorOf(r.first)
		r.Close()
		return nil, err
	}
	c.readColumns(s)
	return r, nil
}

// acquire returns the compiled statement for query, compiling it if need be, or nil when the
// glebarez connection is to run it.
func (c *conn) acquire(query string, args []driver.NamedValue) *stmt {
	if c.cache == nil {
		return nil // closed
	}
	for _, a := range args {
		if a.Name != "" {
			return nil
		}
	}
	if e, ok := c.cache[query]; ok {
		s := e.Value.(*stmt)
		if !s.busy {
			c.lru.MoveToFront(e)
			s.busy = true
			return s
		}
	}
	s := c.compile(query)
	if s == nil {
		return nil
	}
	s.busy = true
	if _, ok := c.cache[query]; !ok {
		s.cached = true
		c.cache[query] = c.lru.PushFront(s)
		c.evict()
	}
	return s
}

// compile prepares query, or returns nil when it is not one statement with only anonymous
// parameters (or does not compile: the glebarez connection then reports why).
func (c *conn) compile(query string) *stmt {
	z, err := libc.CString(query)
	if err != nil {
		return nil
	}
	defer libc.Xfree(c.tls, z)
	out := c.tls.Alloc(int(2 * unsafe.Sizeof(uintptr(0))))
	defer c.tls.Free(int(2 * unsafe.Sizeof(uintptr(0))))
	pp, ptail := out, out+unsafe.Sizeof(uintptr(0))
	rc := sqlite3.Xsqlite3_prepare_v3(c.tls, c.db, z, -1, sqlite3.SQLITE_PREPARE_PERSISTENT, pp, ptail)
	p := *(*uintptr)(at(pp))
	if rc != sqlite3.SQLITE_OK || p == 0 {
		if p != 0 {
			sqlite3.Xsqlite3_finalize(c.tls, p)
		}
		return nil
	}
	tail := *(*uintptr)(at(ptail))
	if rest := libc.GoString(tail); strings.TrimSpace(rest) != "" {
		sqlite3.Xsqlite3_finalize(c.tls, p)
		return nil
	}
	n := int(sqlite3.Xsqlite3_bind_parameter_count(c.tls, p))
	for i := 1; i <= n; i++ {
		if sqlite3.Xsqlite3_bind_parameter_name(c.tls, p, int32(i)) != 0 {
			sqlite3.Xsqlite3_finalize(c.tls, p)
			return nil
		}
	}
	c.prepared++
	return &stmt{p: p, query: query, params: n, colsOfRe: -1}
}

func (c *conn) evict() {
	for e := c.lru.Back(); e != nil && c.lru.Len() > perConn; {
		prev := e.Prev()
		if s := e.Value.(*stmt); !s.busy {
			c.lru.Remove(e)
			delete(c.cache, s.query)
			s.cached = false
			sqlite3.Xsqlite3_finalize(c.tls, s.p)
		}
		e = prev
	}
}

// release resets a statement after use (a statement left running would hold its read
// transaction open) and frees its bound values.
func (c *conn) release(s *stmt) {
	sqlite3.Xsqlite3_reset(c.tls, s.p)
	sqlite3.Xsqlite3_clear_bindings(c.tls, s.p)
	for _, p := range s.allocs {
		libc.Xfree(c.tls, p)
	}
	s.allocs = s.allocs[:0]
	s.busy = false
	if !s.cached {
		sqlite3.Xsqlite3_finalize(c.tls, s.p)
	}
}

// interruptOnDone interrupts the running statement when ctx ends before the returned stop is
// called, as the glebarez connection does.
func (c *conn) interruptOnDone(ctx context.Context) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	running := true
	cancel := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if running && !c.closed {
			sqlite3.Xsqlite3_interrupt(c.itls, c.db)
		}
	})
	return func() {
		cancel()
		c.mu.Lock()
		running = false
		c.mu.Unlock()
	}
}

// Error is an SQLite error, worded as glebarez/go-sqlite words it.
type Error struct {
	msg  string
	code int
}

func (e *Error) Error() string { return e.msg }

// Code is the SQLite result code.
func (e *Error) Code() int { return e.code }

func (c *conn) errorOf(rc int32) error {
	str := libc.GoString(sqlite3.Xsqlite3_errstr(c.tls, rc))
	msg := libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db))
	busy := ""
	if rc == sqlite3.SQLITE_BUSY {
		busy = " (SQLITE_BUSY)"
	}
	if msg == str {
		return &Error{msg: fmt.Sprintf("%s (%v)%s", str, rc, busy), code: int(rc)}
	}
	return &Error{msg: fmt.Sprintf("%s: %s (%v)%s", str, msg, rc, busy), code: int(rc)}
}

// at is the C memory at address p. modernc's libc allocates it outside Go's heap, where it
// never moves; go vet's check of uintptr conversions is about Go memory, which this is not.
func at(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

type result struct{ changes, lastID int64 }

func (r result) LastInsertId() (int64, error) { return r.lastID, nil }
func (r result) RowsAffected() (int64, error) { return r.changes, nil }

// prepared is a database/sql prepared statement: the text only, compiled on this connection
// at its first execution and kept in the connection's cache.
type prepared struct {
	c     *conn
	query string
}

func (p *prepared) Close() error  { return nil }
func (p *prepared) NumInput() int { return -1 }

func (p *prepared) Exec(args []driver.Value) (driver.Result, error) {
	return p.c.ExecContext(context.Background(), p.query, named(args))
}

func (p *prepared) Query(args []driver.Value) (driver.Rows, error) {
	return p.c.QueryContext(context.Background(), p.query, named(args))
}

func (p *prepared) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return p.c.ExecContext(ctx, p.query, args)
}

func (p *prepared) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return p.c.QueryContext(ctx, p.query, args)
}

func named(args []driver.Value) []driver.NamedValue {
	out := make([]driver.NamedValue, len(args))
	for i, v := range args {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out
}
