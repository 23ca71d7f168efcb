package sqlite_test

import (
	"context"
	"testing"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/conformance"
	"github.com/hookrelay/hookrelay/store/sqlite"
)

// open opens the SQLite driver itself, not through store.Open, so the suite tests this
// driver whatever Open would pick.
func open(t testing.TB, path string) *store.Store {
	t.Helper()
	d, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	s := store.New(d)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Backend{Name: "sqlite", DSN: storetest.SQLiteDSN, Open: open})
}
