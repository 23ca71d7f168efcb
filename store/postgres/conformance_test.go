package postgres_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/conformance"
	"github.com/hookrelay/hookrelay/store/postgres"
	"gorm.io/gorm"
)

// open opens the PostgreSQL driver itself, not through store.Open.
func open(t testing.TB, dsn string) *store.Store {
	t.Helper()
	d, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	s := store.New(d)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// openDriver opens the driver on a fresh database (skipping without a server), closed when
// the test ends.
func openDriver(t testing.TB) *postgres.Driver {
	t.Helper()
	requirePostgres(t)
	d, err := postgres.Open(context.Background(), storetest.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// execOn returns a function that runs a statement on d's writer, failing t on an error.
func execOn(t *testing.T, d *postgres.Driver) func(q string, args ...any) {
	return func(q string, args ...any) {
		t.Helper()
		if err := d.Writer.Exec(q, args...).Error; err != nil {
			t.Fatal(err)
		}
	}
}

// twoReplicas opens two stores on one fresh database (skipping without a server), as two
// replicas of Hookrelay, and returns its DSN for raw connections.
func twoReplicas(t testing.TB) (a, b *store.Store, dsn string) {
	t.Helper()
	requirePostgres(t)
	dsn = storetest.PostgresDSN(t)
	return open(t, dsn), open(t, dsn), dsn
}

// requirePostgres skips without a server to test on; with HOOKRELAY_TEST_POSTGRES_URL set
// (as in CI) the tests run.
func requirePostgres(t testing.TB) {
	if os.Getenv(storetest.PostgresEnv) == "" {
		t.Skipf("PostgreSQL suite skipped: %s is not set", storetest.PostgresEnv)
	}
}

func TestConformance(t *testing.T) {
	requirePostgres(t)
	conformance.Run(t, conformance.Backend{Name: "postgres", DSN: storetest.PostgresDSN, Open: open})
}

// genericPlan returns the plan PostgreSQL keeps for a statement on a connection after a few
// runs (its generic one): prepare is PREPARE name(...) AS the statement, explain is EXPLAIN
// (options) EXECUTE name(arguments).
func genericPlan(t *testing.T, d *postgres.Driver, name, prepare, explain string) string {
	t.Helper()
	var plan []string
	err := d.Writer.Transaction(func(tx *gorm.DB) error {
		for _, q := range []string{`SET LOCAL plan_cache_mode = force_generic_plan`, prepare} {
			if err := tx.Exec(q).Error; err != nil {
				return err
			}
		}
		defer tx.Exec(`DEALLOCATE ` + name)
		return tx.Raw(explain).Scan(&plan).Error
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}
