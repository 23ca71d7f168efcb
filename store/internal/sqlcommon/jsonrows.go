package sqlcommon

import (
	"strconv"

	"github.com/hookrelay/hookrelay/models"
)

// The attempt outcomes of a group commit update their deliveries in one statement whose rows
// come as one JSON array of arrays in a single parameter, unpacked by the database (json_each
// on SQLite, jsonb_array_elements on PostgreSQL). The SQLite driver parses every statement
// anew and binds parameters in time quadratic in their number, and an UPDATE cannot be split
// into multi-row chunks as cheaply as an INSERT: measured, a VALUES list cost about 12 µs a
// result and this 8.5 µs. For wide inserted rows the per-row JSON re-parsing costs more than
// binding (see insertParams), so inserts bind.

// JSONRows builds the parameter: one array per row (Row starts one), values in column order.
// A driver unpacks it with Hooks.JSONSource and JSONCol.
type JSONRows struct {
	b    []byte
	rows int
	col  int
}

func NewJSONRows(sizeHint int) *JSONRows {
	r := &JSONRows{b: make([]byte, 0, sizeHint)}
	r.b = append(r.b, '[')
	return r
}

func (r *JSONRows) Row() {
	if r.rows > 0 {
		r.b = append(r.b, "],"...)
	}
	r.b = append(r.b, '[')
	r.rows++
	r.col = 0
}

func (r *JSONRows) sep() {
	if r.col > 0 {
		r.b = append(r.b, ',')
	}
	r.col++
}

func (r *JSONRows) Str(s string) {
	r.sep()
	r.b = models.AppendJSONString(r.b, s)
}

func (r *JSONRows) StrPtr(s *string) {
	if s == nil {
		r.Null()
		return
	}
	r.Str(*s)
}

func (r *JSONRows) Int(n int64) {
	r.sep()
	r.b = strconv.AppendInt(r.b, n, 10)
}

func (r *JSONRows) IntPtr(n *int) {
	if n == nil {
		r.Null()
		return
	}
	r.Int(int64(*n))
}

func (r *JSONRows) Null() {
	r.sep()
	r.b = append(r.b, "null"...)
}

func (r *JSONRows) String() string {
	if r.rows > 0 {
		return string(append(r.b, "]]"...))
	}
	return string(append(r.b, ']'))
}

// MaxBulkRows bounds the rows of one bulk statement, so one parameter stays a few hundred KB.
const MaxBulkRows = 1000
