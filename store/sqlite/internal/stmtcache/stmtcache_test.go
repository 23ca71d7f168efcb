package stmtcache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

// open opens the same file through this driver and through glebarez/go-sqlite's own, each on
// one connection.
func open(t *testing.T) (cached, plain *sql.DB) {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "t.db") + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)"
	var err error
	if cached, err = sql.Open(DriverName, dsn); err != nil {
		t.Fatal(err)
	}
	if plain, err = sql.Open("sqlite", dsn); err != nil {
		t.Fatal(err)
	}
	for _, db := range []*sql.DB{cached, plain} {
		db.SetMaxOpenConns(1)
		t.Cleanup(func() { db.Close() })
	}
	return cached, plain
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// connOf runs f on the pool's one connection as this package's conn.
func connOf(t *testing.T, db *sql.DB, f func(c *conn)) {
	t.Helper()
	sc, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	err = sc.Raw(func(dc any) error {
		c, ok := dc.(*conn)
		if !ok {
			return fmt.Errorf("connection is %T, not this package's: the glebarez connection's handle was not found", dc)
		}
		f(c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStatementsAreCompiledOncePerConnection(t *testing.T) {
	db, _ := open(t)
	exec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`)
	connOf(t, db, func(c *conn) { c.prepared = 0 })
	for i := range 100 {
		exec(t, db, `INSERT INTO t (id, v) VALUES (?, ?)`, i, fmt.Sprint("v", i))
		var v string
		if err := db.QueryRow(`SELECT v FROM t WHERE id = ?`, i).Scan(&v); err != nil || v != fmt.Sprint("v", i) {
			t.Fatalf("row %d: %q, %v", i, v, err)
		}
	}
	st, err := db.Prepare(`SELECT COUNT(*) FROM t WHERE id < ?`)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		var n int
		if err := st.QueryRow(i).Scan(&n); err != nil || n != i {
			t.Fatalf("count below %d: %d, %v", i, n, err)
		}
	}
	st.Close()
	connOf(t, db, func(c *conn) {
		if c.prepared != 3 {
			t.Errorf("compiled %d statements for 210 executions of 3 texts, want 3", c.prepared)
		}
	})
}

// A row reads the same whichever driver wrote it and whichever reads it.
func TestValuesReadAsTheSqliteDriverReadsThem(t *testing.T) {
	cached, plain := open(t)
	exec(t, plain, `CREATE TABLE v (writer TEXT, i INTEGER, f REAL, b BOOLEAN, s TEXT, e TEXT, bl BLOB, eb BLOB, nb BLOB, ts DATETIME, n TEXT)`)
	at := time.Date(2026, 12, 6, 5, 4, 3, 123456789, time.FixedZone("X", 3600+1800))
	row := []any{int64(-7), 2.5, true, "héllo", "", []byte{0xff, 0, 'a'}, []byte{}, []byte(nil), at, nil}
	q := `INSERT INTO v VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	exec(t, cached, q, append([]any{"cached"}, row...)...)
	exec(t, plain, q, append([]any{"plain"}, row...)...)

	read := func(db *sql.DB, writer string) []any {
		out := make([]any, 11)
		ptrs := make([]any, len(out))
		for i := range out {
			ptrs[i] = &out[i]
		}
		if err := db.QueryRow(`SELECT * FROM v WHERE writer = ?`, writer).Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		return out[1:]
	}
	want := read(plain, "plain")
	if ts, ok := want[8].(time.Time); !ok || !ts.Equal(at) {
		t.Fatalf("the plain driver reads the time as %#v", want[8])
	}
	for _, db := range []*sql.DB{cached, plain} {
		for _, writer := range []string{"cached", "plain"} {
			if got := read(db, writer); !reflect.DeepEqual(got, want) {
				t.Errorf("written by %s, read by %s:\n got %#v\nwant %#v", writer, map[*sql.DB]string{cached: "cached", plain: "plain"}[db], got, want)
			}
		}
	}
	var stored []string
	rows, err := plain.Query(`SELECT quote(i)||quote(f)||quote(b)||quote(s)||quote(e)||quote(bl)||quote(eb)||quote(nb)||quote(ts)||quote(n) FROM v ORDER BY writer`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		stored = append(stored, s)
	}
	rows.Close()
	if len(stored) != 2 || stored[0] != stored[1] {
		t.Errorf("stored differently:\n%q", stored)
	}
}

func TestASecondUseWhileTheFirstIsOpenGetsItsOwnStatement(t *testing.T) {
	db, _ := open(t)
	exec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY)`)
	for i := range 3 {
		exec(t, db, `INSERT INTO t VALUES (?)`, i)
	}
	ctx := context.Background()
	sc, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	q := `SELECT id FROM t WHERE id >= ? ORDER BY id`
	outer, err := sc.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for outer.Next() {
		var id int
		outer.Scan(&id)
		inner, err := sc.QueryContext(ctx, q, id)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for inner.Next() {
			n++
		}
		inner.Close()
		got = append(got, id*10+n)
	}
	outer.Close()
	if want := []int{3, 12, 21}; !reflect.DeepEqual(got, want) {
		t.Errorf("nested reads: %v, want %v", got, want)
	}
	sc.Raw(func(dc any) error {
		c := dc.(*conn)
		if c.lru.Len() != len(c.cache) {
			t.Errorf("cache %d entries, list %d", len(c.cache), c.lru.Len())
		}
		for e := c.lru.Front(); e != nil; e = e.Next() {
			if s := e.Value.(*stmt); s.busy || len(s.allocs) > 0 {
				t.Errorf("statement %q still busy (%v) or holding %d values after its rows closed", s.query, s.busy, len(s.allocs))
			}
		}
		return nil
	})
}

func TestErrorsAreWordedAsTheSqliteDriverWordsThem(t *testing.T) {
	cached, plain := open(t)
	exec(t, plain, `CREATE TABLE u (k TEXT PRIMARY KEY)`)
	exec(t, plain, `INSERT INTO u VALUES ('a')`)
	var msgs []string
	for _, db := range []*sql.DB{cached, plain} {
		_, err := db.Exec(`INSERT INTO u VALUES (?)`, "a")
		if err == nil {
			t.Fatal("duplicate key accepted")
		}
		msgs = append(msgs, err.Error())
	}
	if msgs[0] != msgs[1] || !strings.Contains(msgs[0], "UNIQUE constraint failed") {
		t.Errorf("errors differ or do not name the constraint:\n%q", msgs)
	}
	var coded interface{ Code() int }
	if _, err := cached.Exec(`INSERT INTO u VALUES (?)`, "a"); !errors.As(err, &coded) || coded.Code()&0xff != 19 {
		t.Errorf("error %v carries no SQLITE_CONSTRAINT code", err)
	}
}

// What this driver does not compile runs on the glebarez connection, with its results.
func TestWhatItDoesNotCompileRunsAsBefore(t *testing.T) {
	cached, plain := open(t)
	exec(t, cached, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (2, 'b')`)
	var v string
	if err := cached.QueryRow(`SELECT v FROM t WHERE id = :id`, sql.Named("id", 2)).Scan(&v); err != nil || v != "b" {
		t.Errorf("named parameter: %q, %v", v, err)
	}
	if err := cached.QueryRow(`SELECT v FROM t WHERE id = $1`, 1).Scan(&v); err != nil || v != "a" {
		t.Errorf("numbered parameter: %q, %v", v, err)
	}
	_, errCached := cached.Exec(`SELEC 1`)
	_, errPlain := plain.Exec(`SELEC 1`)
	if errCached == nil || errPlain == nil || errCached.Error() != errPlain.Error() {
		t.Errorf("syntax error: %v, want %v", errCached, errPlain)
	}
	if _, err := cached.Exec(`INSERT INTO t VALUES (?, ?)`, 3); err == nil || !strings.Contains(err.Error(), "missing argument with index 2") {
		t.Errorf("a missing argument: %v", err)
	}
}

func TestRollbackUndoesWhatCachedStatementsWrote(t *testing.T) {
	db, _ := open(t)
	exec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY)`)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO t VALUES (?)`, 1); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(`SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("inside the transaction: %d rows, %v", n, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 0 {
		t.Errorf("after rollback: %d rows, %v", n, err)
	}
}

func TestACancelledContextInterruptsOnlyItsStatement(t *testing.T) {
	db, _ := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	var n int64
	err := db.QueryRowContext(ctx, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT COUNT(*) FROM c`, int64(1e12)).Scan(&n)
	if err == nil {
		t.Fatalf("counted to %d: the deadline did not interrupt the statement", n)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the interrupt took %v", d)
	}
	for range 3 {
		if err := db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM (SELECT 1 UNION ALL SELECT 2)`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("the next statement: %d, %v", n, err)
		}
	}
}

func TestASchemaChangeRecompilesAndRenamesColumns(t *testing.T) {
	db, _ := open(t)
	exec(t, db, `CREATE TABLE t (a INTEGER)`)
	exec(t, db, `INSERT INTO t VALUES (1)`)
	cols := func() []string {
		rows, err := db.Query(`SELECT * FROM t`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		c, _ := rows.Columns()
		return c
	}
	if got := cols(); !reflect.DeepEqual(got, []string{"a"}) {
		t.Fatalf("columns %v", got)
	}
	exec(t, db, `ALTER TABLE t ADD COLUMN b TEXT`)
	if got := cols(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("columns after ALTER TABLE: %v, want [a b]", got)
	}
}

func TestTheCacheIsBounded(t *testing.T) {
	db, _ := open(t)
	for i := range perConn + 50 {
		var n int
		if err := db.QueryRow(fmt.Sprintf(`SELECT %d + ?`, i), 1).Scan(&n); err != nil || n != i+1 {
			t.Fatalf("statement %d: %d, %v", i, n, err)
		}
	}
	connOf(t, db, func(c *conn) {
		if len(c.cache) != perConn || c.lru.Len() != perConn {
			t.Errorf("kept %d statements (list %d), want %d", len(c.cache), c.lru.Len(), perConn)
		}
		if _, ok := c.cache[`SELECT 0 + ?`]; ok {
			t.Error("the least recently used statement is still kept")
		}
	})
}

// A new value for a parameter the planner could have used (an equality ahead of an ORDER BY,
// a LIMIT) does not recompile the statement: the claims' and takes' queries are of that kind.
func TestANewBoundValueDoesNotRecompileTheStatement(t *testing.T) {
	db, _ := open(t)
	exec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, w TEXT, n INTEGER)`)
	exec(t, db, `CREATE INDEX t_w ON t (w, n)`)
	q := `SELECT id FROM t WHERE w = ? AND n <= ? ORDER BY n LIMIT ?`
	for i := range 20 {
		rows, err := db.Query(q, fmt.Sprint("w", i%3), i, i+1)
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	connOf(t, db, func(c *conn) {
		s := c.cache[q].Value.(*stmt)
		if n := sqlite3.Xsqlite3_stmt_status(c.tls, s.p, sqlite3.SQLITE_STMTSTATUS_REPREPARE, 0); n != 0 {
			t.Errorf("recompiled %d times for 20 executions with new values", n)
		}
	})
}
