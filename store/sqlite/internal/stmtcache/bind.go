package stmtcache

import (
	"database/sql/driver"
	"fmt"
	"time"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"
)

// timeFormat is how glebarez/go-sqlite writes a time.Time when the DSN names no format (and
// also the one format it can be told to use): the stored text sorts and reads back the same
// whichever driver wrote it.
const timeFormat = "2006-01-02 15:04:05.999999999-07:00"

// bind binds args to the statement's parameters by position, as glebarez/go-sqlite binds
// anonymous parameters: extra arguments are ignored, a missing one is an error. Text and
// blobs are copied into C memory that stays bound until release.
func (c *conn) bind(s *stmt, args []driver.NamedValue) error {
	for i := 1; i <= s.params; i++ {
		v, ok := argAt(args, i)
		if !ok {
			return fmt.Errorf("missing argument with index %d", i)
		}
		var rc int32
		switch x := v.Value.(type) {
		case int64:
			rc = sqlite3.Xsqlite3_bind_int64(c.tls, s.p, int32(i), x)
		case float64:
			rc = sqlite3.Xsqlite3_bind_double(c.tls, s.p, int32(i), x)
		case bool:
			var n int64
			if x {
				n = 1
			}
			rc = sqlite3.Xsqlite3_bind_int64(c.tls, s.p, int32(i), n)
		case []byte:
			switch {
			case x == nil:
				rc = sqlite3.Xsqlite3_bind_null(c.tls, s.p, int32(i))
			case len(x) == 0:
				rc = sqlite3.Xsqlite3_bind_zeroblob(c.tls, s.p, int32(i), 0)
			default:
				p, err := c.copyIn(s, unsafe.Pointer(unsafe.SliceData(x)), len(x))
				if err != nil {
					return err
				}
				rc = sqlite3.Xsqlite3_bind_blob(c.tls, s.p, int32(i), p, int32(len(x)), 0)
			}
		case string:
			rc = c.bindText(s, i, x)
		case time.Time:
			rc = c.bindText(s, i, x.Format(timeFormat))
		case nil:
			rc = sqlite3.Xsqlite3_bind_null(c.tls, s.p, int32(i))
		default:
			return fmt.Errorf("sqlite: invalid driver.Value type %T", x)
		}
		if rc != sqlite3.SQLITE_OK {
			return c.errorOf(rc)
		}
	}
	return nil
}

// argAt is the argument at ordinal i: database/sql numbers them in order, so it is looked for
// where it belongs first (a statement binds hundreds of values, each looked up once).
func argAt(args []driver.NamedValue, i int) (driver.NamedValue, bool) {
	if i <= len(args) && args[i-1].Ordinal == i {
		return args[i-1], true
	}
	for _, v := range args {
		if v.Ordinal == i {
			return v, true
		}
	}
	return driver.NamedValue{}, false
}

// bindText binds s as text; an empty string is empty text, not NULL.
func (c *conn) bindText(s *stmt, i int, v string) int32 {
	p, err := c.copyIn(s, unsafe.Pointer(unsafe.StringData(v)), len(v))
	if err != nil {
		return sqlite3.SQLITE_NOMEM
	}
	return sqlite3.Xsqlite3_bind_text(c.tls, s.p, int32(i), p, int32(len(v)), 0)
}

// copyIn copies n bytes into C memory owned by the statement until its release (at least one
// byte is allocated, so an empty value has a non-NULL address).
func (c *conn) copyIn(s *stmt, src unsafe.Pointer, n int) (uintptr, error) {
	p := libc.Xmalloc(c.tls, types.Size_t(max(n, 1)))
	if p == 0 {
		return 0, fmt.Errorf("sqlite: cannot allocate %d bytes of memory", n)
	}
	if n > 0 {
		copy(unsafe.Slice((*byte)(at(p)), n), unsafe.Slice((*byte)(src), n))
	}
	s.allocs = append(s.allocs, p)
	return p, nil
}
