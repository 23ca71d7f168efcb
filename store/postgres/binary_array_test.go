package postgres_test

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"github.com/hookrelay/hookrelay/store/postgres"
	"gorm.io/gorm"
)

// The column arrays the driver writes in PostgreSQL's binary format itself store exactly what
// pgx's own encoding stored: every column type it writes, NULLs, empty values, the ends of
// each integer's range, times before 1970 and 2000 and with nanoseconds (cut to microseconds),
// and text that a text-format array would have to quote. The same rows are written through
// pgx's encoding (a statement of literal parameters) and read back side by side.
func TestBinaryArraysStoreWhatPgxStores(t *testing.T) {
	d := openDriver(t)
	exec := execOn(t, d)
	for _, table := range []string{"bin_ours", "bin_pgx"} {
		exec(`CREATE TABLE ` + table + ` (id text PRIMARY KEY, s text, b bytea, i8 bigint, i4 integer, i2 smallint, ok boolean, at timestamptz)`)
	}
	cols := []string{"id", "s", "b", "i8", "i4", "i2", "ok", "at"}
	rows := [][]any{
		{"a", "plain", []byte("x"), int64(1), int64(2), int64(3), true, time.Date(2026, 12, 7, 16, 0, 0, 0, time.UTC)},
		{"b", "", []byte{}, int64(0), 0, int32(0), false, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"c", nil, nil, nil, nil, nil, nil, nil},
		{"d", `{"a":"b\\"}, {x} NULL "q"`, []byte{0, 1, 0xff, 0}, int64(math.MaxInt64), int64(math.MaxInt32), int64(math.MaxInt16), true,
			time.Date(1950, 6, 1, 12, 34, 56, 789012345, time.UTC)},
		{"e", "héllo ✓ " + strings.Repeat("x", 3000), []byte(strings.Repeat("y", 5000)), int64(math.MinInt64), int64(math.MinInt32),
			int64(math.MinInt16), false, time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("x", -5*3600))},
		{"f", "Z", []byte(nil), int64(-1), -1, int64(-1), nil, time.Date(2262, 4, 11, 23, 47, 16, 854775000, time.UTC)},
	}
	write := func(table string, rs [][]any) error {
		return d.Writer.Transaction(func(tx *gorm.DB) error {
			return postgres.InsertRowSets(tx, []sqlcommon.Rows{{Table: table, Cols: cols, N: len(rs),
				Row: func(i int, args []any) []any { return append(args, rs[i]...) }}})
		})
	}
	if err := write("bin_ours", rows); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		args := append([]any(nil), r...)
		if b, ok := args[2].([]byte); ok && b == nil {
			args[2] = []byte{} // the rows say an empty value, not NULL (see newPGArray)
		}
		exec(`INSERT INTO bin_pgx (id, s, b, i8, i4, i2, ok, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	}
	read := func(table string) []binRow {
		var out []binRow
		if err := d.Writer.Raw(`SELECT * FROM ` + table + ` ORDER BY id`).Scan(&out).Error; err != nil {
			t.Fatal(err)
		}
		return out
	}
	ours, pgx := read("bin_ours"), read("bin_pgx")
	if len(ours) != len(rows) || len(pgx) != len(rows) {
		t.Fatalf("%d and %d rows read back, want %d", len(ours), len(pgx), len(rows))
	}
	for i := range ours {
		if !reflect.DeepEqual(ours[i], pgx[i]) {
			t.Errorf("binary arrays stored\n %s\nwhere pgx stored\n %s", ours[i], pgx[i])
		}
	}
	if a := ours[0]; a.S == nil || a.B == nil || a.I8 == nil || a.I4 == nil || a.I2 == nil || a.OK == nil || a.At == nil {
		t.Fatalf("row a read back with a NULL: %s", a)
	}
	if ours[2].S != nil || ours[2].B != nil || ours[2].At != nil || ours[1].S == nil || ours[1].B == nil {
		t.Errorf("NULL and empty values mixed up: row c %+v, row b %+v", ours[2], ours[1])
	}
	if got := ours[3].At.UTC(); !got.Equal(time.Date(1950, 6, 1, 12, 34, 56, 789012000, time.UTC)) {
		t.Errorf("a time before 1970 with nanoseconds read back as %s", got)
	}

	// A value out of its column's range is refused before anything is sent.
	for _, bad := range [][]any{
		{"g", "", []byte{}, int64(0), int64(math.MaxInt32) + 1, int64(0), true, time.Now()},
		{"h", "", []byte{}, int64(0), int64(0), int64(math.MinInt16) - 1, true, time.Now()},
	} {
		err := write("bin_ours", [][]any{bad})
		if err == nil || !strings.Contains(err.Error(), "does not fit") {
			t.Errorf("row %v: err %v, want the value refused", bad, err)
		}
	}

	// An array without elements is the empty array, not NULL.
	var n []struct{ Empty bool }
	params := postgres.BinaryArrays([]string{"text", "bigint", "boolean", "timestamp with time zone", "bytea", "integer", "smallint"})
	if err := d.Writer.Raw(`SELECT $1::text[] = '{}' AND $2::bigint[] = '{}' AND $3::boolean[] = '{}' AND $4::timestamptz[] = '{}'
		AND $5::bytea[] = '{}' AND $6::integer[] = '{}' AND $7::smallint[] = '{}' AS empty`, params...).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	if len(n) != 1 || !n[0].Empty {
		t.Errorf("empty arrays read back as %+v, want all equal to '{}'", n)
	}
}

// binRow is a row of the test's tables as read back.
type binRow struct {
	ID string
	S  *string
	B  []byte
	I8 *int64
	I4 *int32
	I2 *int16
	OK *bool
	At *time.Time
}

func (r binRow) String() string {
	var sb strings.Builder
	sb.WriteString(r.ID)
	for _, v := range []any{r.S, r.B, r.I8, r.I4, r.I2, r.OK, r.At} {
		s := "NULL"
		if rv := reflect.ValueOf(v); rv.Kind() != reflect.Pointer || !rv.IsNil() {
			s = fmt.Sprint(reflect.Indirect(rv).Interface())
		}
		if _, isBytes := v.([]byte); isBytes && v.([]byte) == nil {
			s = "NULL"
		}
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		sb.WriteString(" " + s)
	}
	return sb.String()
}
