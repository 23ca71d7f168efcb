package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/jackc/pgx/v5"
)

// -stall-records holds every write to the attempts table until its time is up, on a real
// PostgreSQL server: an insert begun while the lock is held returns only after it is let go.
func TestStallRecordsHoldsWritesToTheAttemptsTable(t *testing.T) {
	url := os.Getenv(storetest.PostgresEnv)
	if url == "" {
		t.Skipf("%s is not set", storetest.PostgresEnv)
	}
	ctx := context.Background()
	dsn, cleanup, err := backend{name: "postgres", url: url}.fresh(ctx, "stalltest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE attempts (id text)"); err != nil {
		t.Fatal(err)
	}
	stalled := make(chan error, 1)
	go func() { stalled <- stallRecords(ctx, dsn, 0, 300*time.Millisecond) }()
	waitFor := func(what, query string, args ...any) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			var ok bool
			if err := conn.QueryRow(ctx, query, args...).Scan(&ok); err != nil {
				t.Fatal(err)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("never saw %s", what)
			}
		}
	}
	waitFor("the attempts table locked", `SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
		WHERE c.relname = 'attempts' AND l.mode = 'ExclusiveLock' AND l.granted)`)
	writer, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close(ctx)
	inserted := make(chan error, 1)
	go func() {
		_, err := writer.Exec(ctx, "INSERT INTO attempts VALUES ('a')")
		inserted <- err
	}()
	waitFor("the insert waiting for the lock", `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE pid = $1 AND wait_event_type = 'Lock')`, writer.PgConn().PID())
	if err := <-stalled; err != nil {
		t.Fatalf("stallRecords: %v", err)
	}
	if err := <-inserted; err != nil {
		t.Fatalf("the insert held up by the stall: %v", err)
	}
}
