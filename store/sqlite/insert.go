package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/internal/sqlcommon"
	"gorm.io/gorm"
)

// insertParams bounds the parameters of one multi-row INSERT on SQLite, so the rows per
// statement follow the table's width. It was chosen when the driver (glebarez/go-sqlite)
// compiled every statement anew and bound parameters in time quadratic in their number, while
// each statement had a fixed cost too. Measured (models benchmarks, statements executed as
// built, see insertRows), per publish of 100 events × 4 webhooks and per recorded result:
//
//	params/statement   publish µs/event   record µs/result   take+record µs/result
//	 8 rows (fixed)         70                 24.5                30.5
//	256                     59.5               23.8                28.1
//	512                     65.5               26.6                31.4
//
// (Through jsonRows instead, wide attempt rows cost more: the per-row JSON re-parsing
// outweighs the binding.) Now that connections keep their compiled statements and bind in
// linear time (internal/stmtcache), 1,024 measured no faster than 256 in the store's publish,
// record and capture benchmarks.
const insertParams = 256

var insertSQL sync.Map // "table(columns)rows" → statement

// insertRows inserts n rows into table, insertParams parameters per statement at most;
// rowArgs appends the values of row i, in column order.
func insertRows(tx *gorm.DB, table string, cols []string, n int, rowArgs func(i int, args []any) []any) error {
	// Straight to the transaction's connection: the statement is final as it is, and gorm
	// would rebuild it placeholder by placeholder on every call.
	return execRows(tx.Statement.Context, tx.Statement.ConnPool, table, cols, n, insertParams, rowArgs)
}

// execRows is insertRows on a connection or transaction of database/sql (or gorm's pool),
// params parameters per statement at most.
func execRows(ctx context.Context, ex execer, table string, cols []string, n, params int, rowArgs func(i int, args []any) []any) error {
	chunk := max(1, params/len(cols))
	args := make([]any, 0, min(n, chunk)*len(cols))
	for from := 0; from < n; from += chunk {
		rows := min(chunk, n-from)
		args = args[:0]
		for i := from; i < from+rows; i++ {
			args = rowArgs(i, args)
		}
		if _, err := ex.ExecContext(ctx, insertStatement(table, cols, rows), args...); err != nil {
			return fmt.Errorf("insert %s: %w", table, err)
		}
	}
	return nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func insertStatement(table string, cols []string, rows int) string {
	key := table + "(" + strings.Join(cols, ",") + ")" + fmt.Sprint(rows)
	if q, ok := insertSQL.Load(key); ok {
		return q.(string)
	}
	one := "(" + placeholders(len(cols)) + ")"
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
	for i := range rows {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(one)
	}
	q := sb.String()
	insertSQL.Store(key, q)
	return q
}

// insertGrouped inserts, on SQLite, n rows that share the values of the shared columns
// (sharedArgs, in that order): those are bound once per statement and each row carries only
// its own columns, so a statement takes more rows and each costs the parser and the binding
// less. Attempts that went out together mostly differ only in their ids, times and headers.
// (The PostgreSQL driver inserts whole columns as arrays in one statement instead.)
func insertGrouped(tx *gorm.DB, table string, shared []string, sharedArgs []any, cols []string, n int,
	rowArgs func(i int, args []any) []any) error {
	chunk := max(1, (insertParams-len(shared))/len(cols))
	args := make([]any, 0, len(shared)+min(n, chunk)*len(cols))
	for from := 0; from < n; from += chunk {
		rows := min(chunk, n-from)
		args = append(args[:0], sharedArgs...)
		for i := from; i < from+rows; i++ {
			args = rowArgs(i, args)
		}
		_, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context, groupedStatement(table, shared, cols, rows), args...)
		if err != nil {
			return fmt.Errorf("insert %s: %w", table, err)
		}
	}
	return nil
}

func groupedStatement(table string, shared, cols []string, rows int) string {
	key := table + "(" + strings.Join(shared, ",") + ";" + strings.Join(cols, ",") + ")" + fmt.Sprint(rows)
	if q, ok := insertSQL.Load(key); ok {
		return q.(string)
	}
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + table + " (" + strings.Join(shared, ", ") + ", " + strings.Join(cols, ", ") + ") SELECT ")
	sb.WriteString(strings.Repeat("?, ", len(shared)))
	for i := range cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "column%d", i+1)
	}
	sb.WriteString(" FROM (VALUES ")
	one := "(" + placeholders(len(cols)) + ")"
	for i := range rows {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(one)
	}
	sb.WriteString(")")
	q := sb.String()
	insertSQL.Store(key, q)
	return q
}

// insertAttempts writes attempt rows: those with the same outcome for the same webhook (most
// of a batch) go in one grouped insert: record 26 -> 24 µs a result in the models benchmark.
func insertAttempts(tx *gorm.DB, attempts []*models.Attempt) error {
	groups := map[sqlcommon.AttemptGroup][]*models.Attempt{}
	var order []sqlcommon.AttemptGroup
	for _, a := range attempts {
		k := sqlcommon.GroupOf(a)
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], a)
	}
	for _, k := range order {
		g := groups[k]
		err := insertGrouped(tx, "attempts", sqlcommon.AttemptShared, k.AppendArgs(nil), sqlcommon.AttemptOwn, len(g), func(i int, args []any) []any {
			return sqlcommon.AppendOwnArgs(g[i], args)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// placeholders is n comma-separated parameters.
func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }
