// Package storetest opens real stores for tests: a SQLite file in the test's temp dir, and,
// when HOOKRELAY_TEST_POSTGRES_URL is set, a fresh schema on that PostgreSQL server, so the
// same suite runs against both backends.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/hookrelay/hookrelay/store"
	"github.com/jackc/pgx/v5"
)

// PostgresEnv names the variable holding the PostgreSQL URL for tests.
const PostgresEnv = "HOOKRELAY_TEST_POSTGRES_URL"

// BackendEnv chooses the store of the integration suites (API, inspector, delivery):
// "postgres" runs them on a fresh schema of HOOKRELAY_TEST_POSTGRES_URL; anything else on a
// SQLite file. `make test` runs those suites once with each.
const BackendEnv = "HOOKRELAY_TEST_BACKEND"

// DSN returns a new, empty database for an integration test on the backend BackendEnv names.
func DSN(t testing.TB) string {
	t.Helper()
	if os.Getenv(BackendEnv) == "postgres" {
		return PostgresDSN(t)
	}
	return SQLiteDSN(t)
}

// Backend is a store flavour under test.
type Backend struct {
	Name string // "sqlite" or "postgres"
	// DSN returns a new, empty database for one test (a file path or a postgres URL pinned to
	// a fresh schema), removed at the end of the test.
	DSN func(t testing.TB) string
}

// Backends lists SQLite and, when configured, PostgreSQL. Without the variable it says once
// per test that PostgreSQL was skipped and why.
func Backends(t testing.TB) []Backend {
	t.Helper()
	list := []Backend{{Name: "sqlite", DSN: SQLiteDSN}}
	if os.Getenv(PostgresEnv) == "" {
		t.Logf("PostgreSQL suite skipped: %s is not set (make test via .ci/run sets it)", PostgresEnv)
		return list
	}
	return append(list, Backend{Name: "postgres", DSN: PostgresDSN})
}

// Each runs fn as a subtest per backend.
func Each(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range Backends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// Open opens a store on dsn and closes it at the end of the test.
func Open(t testing.TB, dsn string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// SQLiteDSN returns a database file path in the test's temp dir.
func SQLiteDSN(t testing.TB) string {
	return filepath.Join(t.TempDir(), "hookrelay.db")
}

// PostgresDSN creates a schema for the test and returns a URL whose search_path points at it.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Fatalf("%s is not set", PostgresEnv)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", PostgresEnv, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
