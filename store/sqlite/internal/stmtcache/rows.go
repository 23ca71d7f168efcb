package stmtcache

import (
	"database/sql/driver"
	"io"
	"math"
	"reflect"
	"strings"
	"time"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// rows reads a cached statement's results, converting values as glebarez/go-sqlite does:
// text in a column declared DATE, DATETIME or TIMESTAMP reads as a time.Time when it parses.
type rows struct {
	c     *conn
	s     *stmt
	stop  func()
	first int32 // the first step's result, taken when the query ran (0 once read)
}

// readColumns reads the statement's column names and which columns hold times, once per
// compilation (SQLite recompiles a statement in its step when the schema changed).
func (c *conn) readColumns(s *stmt) {
	re := sqlite3.Xsqlite3_stmt_status(c.tls, s.p, sqlite3.SQLITE_STMTSTATUS_REPREPARE, 0)
	if s.colsOfRe == re && s.cols != nil {
		return
	}
	n := int(sqlite3.Xsqlite3_column_count(c.tls, s.p))
	s.cols, s.times = make([]string, n), make([]bool, n)
	for i := range n {
		s.cols[i] = libc.GoString(sqlite3.Xsqlite3_column_name(c.tls, s.p, int32(i)))
		switch strings.ToUpper(c.declType(s, i)) {
		case "DATE", "DATETIME", "TIMESTAMP":
			s.times[i] = true
		}
	}
	s.colsOfRe = re
}

func (c *conn) declType(s *stmt, i int) string {
	return libc.GoString(sqlite3.Xsqlite3_column_decltype(c.tls, s.p, int32(i)))
}

func (r *rows) Columns() []string { return r.s.cols }

func (r *rows) Close() error {
	if r.s == nil {
		return nil
	}
	r.stop()
	r.c.release(r.s)
	r.s = nil
	return nil
}

func (r *rows) Next(dest []driver.Value) error {
	c, p := r.c, r.s.p
	rc := r.first
	if rc == 0 {
		rc = sqlite3.Xsqlite3_step(c.tls, p)
	}
	r.first = 0
	switch rc {
	case sqlite3.SQLITE_ROW:
	case sqlite3.SQLITE_DONE:
		return io.EOF
	default:
		return c.errorOf(rc)
	}
	for i := range dest {
		switch sqlite3.Xsqlite3_column_type(c.tls, p, int32(i)) {
		case sqlite3.SQLITE_INTEGER:
			dest[i] = sqlite3.Xsqlite3_column_int64(c.tls, p, int32(i))
		case sqlite3.SQLITE_FLOAT:
			dest[i] = sqlite3.Xsqlite3_column_double(c.tls, p, int32(i))
		case sqlite3.SQLITE_TEXT:
			v := string(c.columnBytes(p, i, sqlite3.Xsqlite3_column_text(c.tls, p, int32(i))))
			if r.s.times[i] {
				dest[i] = parseTime(v)
			} else {
				dest[i] = v
			}
		case sqlite3.SQLITE_BLOB:
			b := c.columnBytes(p, i, sqlite3.Xsqlite3_column_blob(c.tls, p, int32(i)))
			if len(b) == 0 {
				dest[i] = []byte(nil) // as glebarez/go-sqlite reads an empty blob
			} else {
				dest[i] = append([]byte(nil), b...)
			}
		default:
			dest[i] = nil
		}
	}
	return nil
}

// columnBytes views the value at ptr (column i of the current row) in C memory; it is valid
// until the next step.
func (c *conn) columnBytes(p uintptr, i int, ptr uintptr) []byte {
	n := int(sqlite3.Xsqlite3_column_bytes(c.tls, p, int32(i)))
	if ptr == 0 || n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(at(ptr)), n)
}

// parseTimeFormats are the formats glebarez/go-sqlite reads times in, in its order, after
// the one of time.Time's String.
var parseTimeFormats = []string{
	timeFormat,
	"2006-01-02T15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseTime reads s as a time, or leaves it text when no format fits.
func parseTime(s string) any {
	t := s
	if x := strings.Index(s, "m="); x > 0 {
		t = s[:x]
	}
	if v, err := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", strings.TrimSpace(t)); err == nil {
		return v
	}
	ts := strings.TrimSuffix(s, "Z")
	for _, f := range parseTimeFormats {
		if v, err := time.ParseInLocation(f, ts, time.UTC); err == nil {
			return v
		}
	}
	return s
}

// The column type methods answer as glebarez/go-sqlite's do (gorm reads them when it scans
// into maps and when it migrates).

func (r *rows) ColumnTypeDatabaseTypeName(i int) string {
	return strings.ToUpper(r.c.declType(r.s, i))
}

func (r *rows) ColumnTypeLength(i int) (int64, bool) {
	switch sqlite3.Xsqlite3_column_type(r.c.tls, r.s.p, int32(i)) {
	case sqlite3.SQLITE_TEXT, sqlite3.SQLITE_BLOB:
		return math.MaxInt64, true
	}
	return 0, false
}

func (r *rows) ColumnTypeNullable(int) (bool, bool) { return true, true }

func (r *rows) ColumnTypePrecisionScale(int) (int64, int64, bool) { return 0, 0, false }

func (r *rows) ColumnTypeScanType(i int) reflect.Type {
	decl := strings.ToLower(r.c.declType(r.s, i))
	switch sqlite3.Xsqlite3_column_type(r.c.tls, r.s.p, int32(i)) {
	case sqlite3.SQLITE_INTEGER:
		if decl == "boolean" {
			return reflect.TypeFor[bool]()
		}
		return reflect.TypeFor[int64]()
	case sqlite3.SQLITE_FLOAT:
		return reflect.TypeFor[float64]()
	case sqlite3.SQLITE_TEXT:
		switch decl {
		case "date", "datetime", "time", "timestamp":
			return reflect.TypeFor[time.Time]()
		}
		return reflect.TypeFor[string]()
	case sqlite3.SQLITE_BLOB:
		return reflect.SliceOf(reflect.TypeFor[[]byte]())
	case sqlite3.SQLITE_NULL:
		return reflect.TypeOf(nil)
	}
	return reflect.TypeFor[string]()
}
