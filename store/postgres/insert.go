package postgres

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"gorm.io/gorm"
)

// pgInsertChunk is the rows of one INSERT on PostgreSQL: one array per column, so the size
// only bounds the memory of one statement.
const pgInsertChunk = 5000

// insertRows inserts rows as one array per column, unnested into rows:
// INSERT ... SELECT * FROM unnest($1::text[], $2::bigint[], ...). The statement is the same
// whatever the row count, so it is parsed and planned once per connection, and its few
// parameters go over the wire as arrays; a VALUES list of 500 rows × 9 columns had the
// server parse and plan 4,500 parameters for every publish, and the server's CPU is what the
// publish path waits on there.
func insertRows(tx *gorm.DB, table string, cols []string, n int, rowArgs func(i int, args []any) []any) error {
	return insertRowsThen(tx, table, cols, n, rowArgs, "", nil)
}

// insertRowsThen is insertRows with a clause after the SELECT (ON CONFLICT ... RETURNING);
// when returned is set, it gets the first column of each row the statement returns.
func insertRowsThen(tx *gorm.DB, table string, cols []string, n int, rowArgs func(i int, args []any) []any,
	suffix string, returned func(string)) error {
	ins, err := pgInsertFor(tx, table, cols)
	if err != nil {
		return err
	}
	for from := 0; from < n; from += pgInsertChunk {
		params, err := ins.arrays(from, min(pgInsertChunk, n-from), rowArgs)
		if err != nil {
			return err
		}
		// Straight to the transaction's connection: gorm would expand each array into a list.
		if returned == nil {
			if _, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context, ins.statement+suffix, params...); err != nil {
				return fmt.Errorf("insert %s: %w", table, err)
			}
			continue
		}
		if err := scanStrings(tx, ins.statement+suffix, params, returned); err != nil {
			return fmt.Errorf("insert %s: %w", table, err)
		}
	}
	return nil
}

// arrays builds the statement's parameters for rows from..from+rows-1: one array per column.
func (ins *pgInsert) arrays(from, rows int, rowArgs func(i int, args []any) []any) ([]any, error) {
	arrays := make([]pgArray, len(ins.cols))
	for c, t := range ins.types {
		arrays[c] = newPGArray(t, rows)
	}
	args := make([]any, 0, len(ins.cols))
	for i := from; i < from+rows; i++ {
		args = rowArgs(i, args[:0])
		if len(args) != len(ins.cols) {
			return nil, fmt.Errorf("insert %s: row %d has %d values for %d columns", ins.table, i, len(args), len(ins.cols))
		}
		for c, v := range args {
			if err := arrays[c].add(v); err != nil {
				return nil, fmt.Errorf("insert %s: column %s: %w", ins.table, ins.cols[c], err)
			}
		}
	}
	return binaryArrays(arrays, ins.types), nil
}

// insertRowSets writes the sets' rows in one statement, each set but the last in a
// data-modifying WITH: one round trip where a publish took one per table (its events, then
// their deliveries). Sets larger than one chunk go one by one.
func insertRowSets(tx *gorm.DB, sets []sqlcommon.Rows) error {
	_, _, err := insertRowSetsAt(tx, sets, 0, nil, sqlcommon.BacklogCheck{})
	return err
}

// insertRowSetsAt is insertRowSets that, when gen is not 0, writes only while the webhooks
// are as they were at that generation (webhook_generation, publish_cache.go), all in one
// statement whatever the number of sets, and reports whether it wrote. The statement first
// takes the shared locks of the spills in locks, and reads the generation after them. It also
// looks at the backlogs of look.IDs (a checked insert only), as they were before its rows,
// and returns what it found, whether it wrote or not.
func insertRowSetsAt(tx *gorm.DB, sets []sqlcommon.Rows, gen int64, locks []string, look sqlcommon.BacklogCheck) (bool, map[string]sqlcommon.Backlog, error) {
	sets = slices.DeleteFunc(slices.Clone(sets), func(r sqlcommon.Rows) bool { return r.N == 0 })
	if len(sets) == 0 {
		return true, nil, nil
	}
	oneStatement := !slices.ContainsFunc(sets, func(r sqlcommon.Rows) bool { return r.N > pgInsertChunk })
	if gen != 0 && !oneStatement {
		return false, nil, fmt.Errorf("insert: %d rows do not go in one statement", sets[0].N)
	}
	if gen == 0 && (len(sets) == 1 || !oneStatement) {
		for _, r := range sets {
			if err := insertRowsThen(tx, r.Table, r.Cols, r.N, r.Row, r.Then, nil); err != nil {
				return false, nil, err
			}
		}
		return true, nil, nil
	}
	var sb strings.Builder
	var params []any
	names := make([]string, len(sets))
	sb.WriteString("WITH ")
	switch {
	case gen != 0 && len(locks) > 0:
		sb.WriteString("g AS (SELECT hookrelay_publish_generation($2, $3::text[]) AS n), ")
		params = append(params, gen, spillLockClass, textArray(locks)) // $1, $2, $3
	case gen != 0:
		sb.WriteString("g AS (SELECT " + generationSQL + " AS n), ")
		params = append(params, gen) // $1
	}
	for i, r := range sets {
		ins, err := pgInsertFor(tx, r.Table, r.Cols)
		if err != nil {
			return false, nil, err
		}
		p, err := ins.arrays(0, r.N, r.Row)
		if err != nil {
			return false, nil, err
		}
		last := i == len(sets)-1 && gen == 0
		switch {
		case i == 0:
		case last:
			sb.WriteString(" ")
		default:
			sb.WriteString(", ")
		}
		if !last {
			sb.WriteString("w" + strconv.Itoa(i) + " AS (")
		}
		sb.WriteString(ins.at(len(params)))
		params = append(params, p...)
		if gen != 0 {
			sb.WriteString(" WHERE (SELECT n FROM g) = $1")
		}
		sb.WriteString(r.Then)
		if !last {
			sb.WriteString(")")
		}
		names[i] = r.Table
	}
	if gen == 0 {
		if _, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context, sb.String(), params...); err != nil {
			return false, nil, fmt.Errorf("insert %s: %w", strings.Join(names, ", "), err)
		}
		return true, nil, nil
	}
	sb.WriteString(" SELECT n, ")
	if len(look.IDs) > 0 {
		n := len(params)
		sb.WriteString(fmt.Sprintf(backlogsSQL, n+1, n+2, n+3))
		params = append(params, textArray(look.IDs), look.DueBefore, look.Limit)
	} else {
		sb.WriteString("NULL")
	}
	sb.WriteString(" FROM g")
	var found int64
	var backlogs []byte
	if err := tx.Statement.ConnPool.QueryRowContext(tx.Statement.Context, sb.String(), params...).Scan(&found, &backlogs); err != nil {
		return false, nil, fmt.Errorf("insert %s: %w", strings.Join(names, ", "), err)
	}
	looked, err := parseBacklogs(backlogs)
	if err != nil {
		return false, nil, err
	}
	return found == gen, looked, nil
}

// backlogsSQL is a checked insert's look at backlogs (its % verbs are the numbers of its
// parameters: the webhooks, the time before which a delivery counts as due, the most
// deliveries to count of each), the look webhooksAndBacklogsSQL makes, as a JSON array.
const backlogsSQL = `(SELECT json_agg(json_build_object('id', w.id, 'pending', b.pending, 'due', b.due))
	FROM unnest($%d::text[]) AS w(id)
	CROSS JOIN LATERAL (SELECT COUNT(*) AS pending, COUNT(*) FILTER (WHERE x.next_attempt_at <= $%d) AS due
		FROM (SELECT d.next_attempt_at FROM deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending'
			ORDER BY d.next_attempt_at LIMIT $%d) AS x) AS b)`

// parseBacklogs reads backlogsSQL's array; nil for NULL.
func parseBacklogs(raw []byte) (map[string]sqlcommon.Backlog, error) {
	if raw == nil {
		return nil, nil
	}
	var rows []struct {
		ID           string
		Pending, Due int
	}
	if err := json.Unmarshal(raw, &rows); err != nil {
		return nil, fmt.Errorf("backlogs: %w", err)
	}
	out := make(map[string]sqlcommon.Backlog, len(rows))
	for _, r := range rows {
		out[r.ID] = sqlcommon.Backlog{Pending: r.Pending, Due: r.Due}
	}
	return out, nil
}

// scanStrings runs query on tx's connection and hands each row's first column to got.
func scanStrings(tx *gorm.DB, query string, params []any, got func(string)) error {
	rows, err := tx.Statement.ConnPool.QueryContext(tx.Statement.Context, query, params...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return err
		}
		got(v)
	}
	return rows.Err()
}

// pgInsert is the statement inserting into some columns of a table, and those columns'
// types as PostgreSQL names them.
type pgInsert struct {
	statement string
	table     string
	cols      []string
	types     []string
}

// at is the statement with its parameters numbered from offset+1.
func (ins *pgInsert) at(offset int) string {
	params := make([]string, len(ins.cols))
	for i, t := range ins.types {
		params[i] = "$" + strconv.Itoa(offset+i+1) + "::" + t + "[]"
	}
	return "INSERT INTO " + ins.table + " (" + strings.Join(ins.cols, ", ") + ") SELECT * FROM unnest(" + strings.Join(params, ", ") + ")"
}

// pgInserts caches pgInsert by table(columns). The types are read once per process: every
// database this process opens has the schema its migrations made.
var pgInserts sync.Map

func pgInsertFor(tx *gorm.DB, table string, cols []string) (*pgInsert, error) {
	key := table + "(" + strings.Join(cols, ",") + ")"
	if ins, ok := pgInserts.Load(key); ok {
		return ins.(*pgInsert), nil
	}
	var found []struct {
		Name string
		Type string
	}
	if err := tx.Raw(`SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
		WHERE attrelid = CAST(? AS regclass) AND attnum > 0 AND NOT attisdropped`, table).Scan(&found).Error; err != nil {
		return nil, fmt.Errorf("insert %s: column types: %w", table, err)
	}
	byName := make(map[string]string, len(found))
	for _, f := range found {
		byName[f.Name] = f.Type
	}
	ins := &pgInsert{table: table, cols: cols, types: make([]string, len(cols))}
	for i, c := range cols {
		t, ok := byName[c]
		if !ok {
			return nil, fmt.Errorf("insert %s: no column %s", table, c)
		}
		ins.types[i] = t
	}
	ins.statement = ins.at(0)
	pgInserts.Store(key, ins)
	return ins, nil
}

// pgArray collects one column's values as the Go slice pgx encodes to that column's array
// type; nil values become NULL.
type pgArray interface {
	add(v any) error
	value() any
}

func newPGArray(pgType string, n int) pgArray {
	switch pgType {
	case "bytea":
		return &bytesArray{make([][]byte, 0, n)}
	case "timestamp with time zone":
		return &valArray[time.Time]{vals: make([]time.Time, 0, n)}
	case "integer", "bigint", "smallint":
		return &valArray[int64]{vals: make([]int64, 0, n), conv: toInt64}
	case "boolean":
		return &valArray[bool]{vals: make([]bool, 0, n)}
	default:
		return &valArray[string]{vals: make([]string, 0, n)}
	}
}

// valArray holds a column's values as a []T, which pgx encodes without reflection, and the
// column as a []*T (reflection, and a pointer to follow per value) only when it holds a NULL.
// Most columns never do; encoding them through []*T took a tenth of the publishing process's
// CPU with 50 spilled webhooks.
type valArray[T any] struct {
	vals []T
	null []bool // nil until the first NULL
	conv func(v any) (T, bool)
}

func (a *valArray[T]) add(v any) error {
	var zero T
	if v == nil {
		if a.null == nil {
			a.null = make([]bool, len(a.vals), cap(a.vals))
		}
		a.vals = append(a.vals, zero)
		a.null = append(a.null, true)
		return nil
	}
	x, ok := v.(T)
	if !ok && a.conv != nil {
		x, ok = a.conv(v)
	}
	if !ok {
		return fmt.Errorf("got %T, want %T", v, zero)
	}
	a.vals = append(a.vals, x)
	if a.null != nil {
		a.null = append(a.null, false)
	}
	return nil
}

func (a *valArray[T]) value() any {
	if a.null == nil {
		return a.vals
	}
	ptrs := make([]*T, len(a.vals))
	for i := range a.vals {
		if !a.null[i] {
			ptrs[i] = &a.vals[i]
		}
	}
	return ptrs
}

func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	}
	return 0, false
}

type bytesArray struct{ vals [][]byte }

func (a *bytesArray) add(v any) error {
	switch b := v.(type) {
	case nil:
		a.vals = append(a.vals, nil)
	case []byte:
		if b == nil {
			b = []byte{} // a nil slice would be NULL; the value was given
		}
		a.vals = append(a.vals, b)
	case string:
		a.vals = append(a.vals, []byte(b))
	default:
		return fmt.Errorf("got %T, want bytes", v)
	}
	return nil
}

func (a *bytesArray) value() any { return a.vals }
