package store

import (
	"strconv"

	"github.com/hookrelay/hookrelay/models"
)

// The attempt outcomes of a group commit update their deliveries in one statement whose rows
// come as one JSON array of arrays in a single parameter, unpacked by the database (json_each
// on SQLite, json_array_elements on PostgreSQL). The SQLite driver parses every statement
// anew and binds parameters in time quadratic in their number, and an UPDATE cannot be split
// into multi-row chunks as cheaply as an INSERT: measured, a VALUES list cost about 12 µs a
// result and this 8.5 µs. For wide inserted rows the per-row JSON re-parsing costs more than
// binding (see insertParams), so inserts bind.

// jsonRows builds the parameter: one array per row, values in column order.
type jsonRows struct {
	b    []byte
	rows int
	col  int
}

func newJSONRows(sizeHint int) *jsonRows {
	r := &jsonRows{b: make([]byte, 0, sizeHint)}
	r.b = append(r.b, '[')
	return r
}

func (r *jsonRows) row() {
	if r.rows > 0 {
		r.b = append(r.b, "],"...)
	}
	r.b = append(r.b, '[')
	r.rows++
	r.col = 0
}

func (r *jsonRows) sep() {
	if r.col > 0 {
		r.b = append(r.b, ',')
	}
	r.col++
}

func (r *jsonRows) str(s string) {
	r.sep()
	r.b = models.AppendJSONString(r.b, s)
}

func (r *jsonRows) strPtr(s *string) {
	if s == nil {
		r.null()
		return
	}
	r.str(*s)
}

func (r *jsonRows) int(n int64) {
	r.sep()
	r.b = strconv.AppendInt(r.b, n, 10)
}

func (r *jsonRows) intPtr(n *int) {
	if n == nil {
		r.null()
		return
	}
	r.int(int64(*n))
}

func (r *jsonRows) null() {
	r.sep()
	r.b = append(r.b, "null"...)
}

func (r *jsonRows) String() string {
	if r.rows > 0 {
		return string(append(r.b, "]]"...))
	}
	return string(append(r.b, ']'))
}

// jsonSource is the FROM item that unpacks a jsonRows parameter into rows with a column
// named value.
func (s *Store) jsonSource() string {
	if s.IsPostgres() {
		return `json_array_elements(CAST(? AS JSON)) AS j(value)`
	}
	return `json_each(?) AS j`
}

// jsonCol reads column i of a jsonRows row, typed for PostgreSQL (SQLite takes the JSON
// value's own type: integers stay integers, null is NULL).
func (s *Store) jsonCol(i int, pgType string) string {
	col := "j.value->>" + strconv.Itoa(i)
	if s.IsPostgres() && pgType != "text" {
		return "CAST(" + col + " AS " + pgType + ")"
	}
	return col
}

// maxBulkRows bounds the rows of one bulk statement, so one parameter stays a few hundred KB.
const maxBulkRows = 1000
