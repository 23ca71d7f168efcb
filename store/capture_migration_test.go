package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// A database whose captures are keyed by id alone (as before migration 17) comes through
// the rebuild with every capture whole, and ends keyed by bin and id: one index on the table,
// an id unique within its bin, and bound and listed as before.
func TestCapturesKeyedByBinAfterUpgrade(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		dsn := b.DSN(t)
		s, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		ts, blob := "DATETIME", "BLOB"
		if b.Name == "postgres" {
			ts, blob = "TIMESTAMPTZ", "BYTEA"
		}
		bin := &models.Bin{Name: "old"}
		if err := s.CreateBin(ctx, bin); err != nil {
			t.Fatal(err)
		}
		// The table as migrations 2 and 13 left it.
		at := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
		for _, q := range []string{
			`DROP TABLE captures`,
			`CREATE TABLE captures (id TEXT PRIMARY KEY, bin_id TEXT NOT NULL, method TEXT NOT NULL,
				path TEXT NOT NULL, query TEXT NOT NULL DEFAULT '', headers TEXT NOT NULL, body ` + blob + ` NOT NULL,
				size BIGINT NOT NULL, remote_addr TEXT NOT NULL DEFAULT '', received_at ` + ts + ` NOT NULL,
				verdicts TEXT NOT NULL, rejected TEXT NOT NULL DEFAULT '', answered INTEGER NOT NULL DEFAULT 0)`,
			`CREATE INDEX captures_bin ON captures (bin_id, id)`,
			`DELETE FROM schema_migrations WHERE version = 17`,
		} {
			if err := s.ExecSQL(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if err := s.ExecSQL(ctx, `INSERT INTO captures (id, bin_id, method, path, query, headers, body, size,
			remote_addr, received_at, verdicts, rejected, answered) VALUES (?, ?, 'PUT', '/inspect/x/a', 'q=1',
			'{"A":["b"]}', ?, 3, '10.0.0.1:1', ?, '{"signature":"valid"}', '', 202)`,
			"req_00old", bin.ID, []byte{0, 1, 255}, at); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		s = storetest.Open(t, dsn)
		c, err := s.GetCapture(ctx, bin.ID, "req_00old")
		if err != nil {
			t.Fatal(err)
		}
		if c.Method != "PUT" || c.Path != "/inspect/x/a" || c.Query != "q=1" || c.Headers != `{"A":["b"]}` ||
			string(c.Body) != "\x00\x01\xff" || c.Size != 3 || c.RemoteAddr != "10.0.0.1:1" ||
			!c.ReceivedAt.Equal(at) || c.Verdicts != `{"signature":"valid"}` || c.Answered != 202 {
			t.Errorf("capture after the upgrade: %+v", c)
		}

		var indexes int64
		q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'captures'`
		if b.Name == "postgres" {
			q = `SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'captures'`
		}
		if err := s.ScanSQL(ctx, &indexes, q); err != nil || indexes != 1 {
			t.Errorf("captures has %d indexes (%v), want 1: its key (bin_id, id)", indexes, err)
		}

		// An id is unique within its bin, and the key is enforced. (These ids sort before the
		// generated ones, time-ordered, as older captures.)
		other := &models.Bin{Name: "other"}
		if err := s.CreateBin(ctx, other); err != nil {
			t.Fatal(err)
		}
		same := func(binID string) *models.Capture {
			return &models.Capture{ID: "req_00same", BinID: binID, Method: "POST", Path: "/", Headers: "{}",
				ReceivedAt: time.Now().UTC(), Verdicts: "{}"}
		}
		if err := s.InsertCaptures(ctx, []*models.Capture{same(bin.ID), same(other.ID)}, 0); err != nil {
			t.Fatalf("one id in two bins: %v", err)
		}
		err = s.InsertCaptures(ctx, []*models.Capture{same(bin.ID)}, 0)
		if err == nil || errors.Is(err, models.ErrNotFound) ||
			!strings.Contains(strings.ToLower(err.Error()), "unique") && !strings.Contains(err.Error(), "23505") {
			t.Errorf("the same id twice in one bin: %v, want a unique violation", err)
		}

		// The bound still keeps the newest: 12 more into a bin of keep 10 leave the 10 newest.
		var newest []string
		for i := range 12 {
			c := &models.Capture{BinID: bin.ID, Method: "POST", Path: "/", Headers: "{}",
				ReceivedAt: time.Now().UTC(), Verdicts: "{}"}
			if err := s.InsertCaptures(ctx, []*models.Capture{c}, 10); err != nil {
				t.Fatal(err)
			}
			if i >= 2 {
				newest = append([]string{c.ID}, newest...)
			}
		}
		list, _, err := s.ListCaptures(ctx, bin.ID, models.Page{Limit: 50}, 16, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range list {
			got = append(got, c.ID)
		}
		if strings.Join(got, ",") != strings.Join(newest, ",") {
			t.Errorf("bin lists %v, want the 10 newest %v", got, newest)
		}
	})
}
