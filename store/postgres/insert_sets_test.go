package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"github.com/hookrelay/hookrelay/store/postgres"
	"gorm.io/gorm"
)

// Several tables' rows written together arrive whole, each in its own table, with their NULLs
// and types, whether they share one statement or a set too large for one goes alone; a
// failing set fails the whole write.
func TestRowSetsReachTheirTablesInOneWrite(t *testing.T) {
	d := openDriver(t)
	for _, q := range []string{
		`CREATE TABLE sets_a (id text PRIMARY KEY, n bigint)`,
		`CREATE TABLE sets_b (id text PRIMARY KEY, at timestamptz NOT NULL, body bytea)`,
		`CREATE TABLE sets_c (id text PRIMARY KEY, ok boolean)`,
	} {
		if err := d.Writer.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	rows := func(table string, cols []string, n int, row func(i int) []any) sqlcommon.Rows {
		return sqlcommon.Rows{Table: table, Cols: cols, N: n, Row: func(i int, args []any) []any { return append(args, row(i)...) }}
	}
	a := func(prefix string, n int) sqlcommon.Rows {
		return rows("sets_a", []string{"id", "n"}, n, func(i int) []any {
			if i%2 == 1 {
				return []any{fmt.Sprintf("%s%05d", prefix, i), nil}
			}
			return []any{fmt.Sprintf("%s%05d", prefix, i), int64(i)}
		})
	}
	b := rows("sets_b", []string{"id", "at", "body"}, 3, func(i int) []any { return []any{fmt.Sprint("b", i), at, []byte{byte(i), 0}} })
	c := rows("sets_c", []string{"id", "ok"}, 2, func(i int) []any { return []any{fmt.Sprint("c", i), i == 0} })
	write := func(sets ...sqlcommon.Rows) error {
		return d.Writer.Transaction(func(tx *gorm.DB) error { return postgres.InsertRowSets(tx, sets) })
	}
	count := func(q string) (n int64) {
		t.Helper()
		if err := d.Writer.Raw(q).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}

	if err := write(a("x", 4), sqlcommon.Rows{}, b, c); err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT count(*) FROM sets_a WHERE id LIKE 'x%' AND (n IS NULL) = (right(id, 1)::int % 2 = 1)`); n != 4 {
		t.Errorf("%d of 4 rows of sets_a with their values and NULLs", n)
	}
	if n := count(`SELECT count(*) FROM sets_b WHERE at = '2026-12-04T10:00:00Z' AND length(body) = 2`); n != 3 {
		t.Errorf("%d of 3 rows of sets_b", n)
	}
	if n := count(`SELECT count(*) FROM sets_c WHERE ok = (id = 'c0')`); n != 2 {
		t.Errorf("%d of 2 rows of sets_c", n)
	}

	// More rows than one statement takes: each set goes alone, all of them still written.
	if err := write(a("y", postgres.InsertChunk+1), rows("sets_c", []string{"id", "ok"}, 1, func(int) []any { return []any{"c9", true} })); err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT count(*) FROM sets_a WHERE id LIKE 'y%'`); n != postgres.InsertChunk+1 {
		t.Errorf("%d of %d large-set rows", n, postgres.InsertChunk+1)
	}

	// A conflict in the last set undoes the first: one statement, one outcome.
	if err := write(a("z", 2), c); err == nil {
		t.Fatal("a duplicate key in sets_c was accepted")
	}
	if n := count(`SELECT count(*) FROM sets_a WHERE id LIKE 'z%'`); n != 0 {
		t.Errorf("%d rows of the failed write stayed", n)
	}
}
