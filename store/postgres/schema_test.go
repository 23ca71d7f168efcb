package postgres_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/internal/storetest"
)

var update = flag.Bool("update", false, "rewrite testdata/schema.golden from the migrated schema")

// The migrated schema (columns, then indexes, then triggers) is the committed one: a migration that changes
// it changes testdata/schema.golden in the same commit (go test ./store/postgres -run Schema
// -update, with HOOKRELAY_TEST_POSTGRES_URL set).
func TestSchemaMatchesGolden(t *testing.T) {
	requirePostgres(t)
	s := open(t, storetest.PostgresDSN(t))
	ctx := context.Background()
	var cols []struct {
		TableName, ColumnName, DataType, IsNullable string
		ColumnDefault                               *string
	}
	if err := s.ScanSQL(ctx, &cols, `SELECT table_name, column_name, data_type, is_nullable, column_default
		FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`); err != nil {
		t.Fatal(err)
	}
	var indexes []struct{ Indexname, Indexdef string }
	if err := s.ScanSQL(ctx, &indexes, `SELECT indexname, indexdef FROM pg_indexes
		WHERE schemaname = current_schema() ORDER BY indexname`); err != nil {
		t.Fatal(err)
	}
	var triggers []struct{ Def string }
	if err := s.ScanSQL(ctx, &triggers, `SELECT pg_get_triggerdef(t.oid) AS def FROM pg_trigger t
		JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = current_schema()::regnamespace
		AND NOT t.tgisinternal ORDER BY t.tgname`); err != nil {
		t.Fatal(err)
	}
	var schemaName string
	if err := s.ScanSQL(ctx, &schemaName, `SELECT current_schema()`); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	table := ""
	for _, c := range cols {
		if c.TableName != table {
			table = c.TableName
			fmt.Fprintf(&sb, "\ntable %s\n", table)
		}
		def := ""
		if c.ColumnDefault != nil {
			def = " DEFAULT " + *c.ColumnDefault
		}
		null := ""
		if c.IsNullable == "NO" {
			null = " NOT NULL"
		}
		fmt.Fprintf(&sb, "\t%s %s%s%s\n", c.ColumnName, c.DataType, null, def)
	}
	sb.WriteString("\n")
	for _, ix := range indexes {
		// The test's schema name is random; the definition without it is what matters.
		fmt.Fprintf(&sb, "%s\n", strings.ReplaceAll(ix.Indexdef, schemaName+".", ""))
	}
	sb.WriteString("\n")
	for _, tg := range triggers {
		fmt.Fprintf(&sb, "%s\n", strings.ReplaceAll(tg.Def, schemaName+".", ""))
	}
	got := sb.String()
	const golden = "testdata/schema.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("migrated schema differs from %s (rerun with -update if intended):\n%s", golden, got)
	}
}
