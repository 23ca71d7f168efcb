package postgres_test

import (
	"context"
	"slices"
	"testing"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/store/postgres"
)

// A list bound as one array reaches the server element for element, whatever it holds.
func TestTextArrayReachesTheServerIntact(t *testing.T) {
	requirePostgres(t)
	s := open(t, storetest.PostgresDSN(t))
	for _, in := range [][]string{
		{"evt_01a242844e11778388dd3defd58428ee"},
		{`a"b`, `back\slash`, "com,ma", "{brace}", "", "NULL", " spaced ", "ünï"},
		{},
		nil,
	} {
		var out []string
		if err := s.ScanSQL(context.Background(), &out, `SELECT unnest(CAST(? AS text[]))`, postgres.TextArray(in)); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out, in) && (len(in) != 0 || len(out) != 0) {
			t.Errorf("sent %q, the server saw %q", in, out)
		}
		// An empty list is an empty array, not NULL: the publish's lock function loops over it.
		var n int
		if err := s.ScanSQL(context.Background(), &n, `SELECT cardinality(CAST(? AS text[]))`, postgres.TextArray(in)); err != nil {
			t.Fatal(err)
		}
		if n != len(in) {
			t.Errorf("sent %d elements, the server counted %d", len(in), n)
		}
	}
}
