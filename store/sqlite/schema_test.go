package sqlite_test

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

var update = flag.Bool("update", false, "rewrite testdata/schema.golden from the migrated schema")

// schema dumps every table, index and view as SQLite stores its definition.
func schema(t *testing.T, s *store.Store) string {
	t.Helper()
	var rows []struct{ Type, Name, SQL string }
	if err := s.ScanSQL(context.Background(), &rows, `SELECT type, name, COALESCE(sql, '') AS sql FROM sqlite_master
		WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name`); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, r := range rows {
		sb.WriteString("-- " + r.Type + " " + r.Name + "\n" + r.SQL + ";\n\n")
	}
	return sb.String()
}

// The migrated schema is the committed one: a migration that changes it changes
// testdata/schema.golden in the same commit (go test ./store/sqlite -run Schema -update).
func TestSchemaMatchesGolden(t *testing.T) {
	got := schema(t, open(t, storetest.SQLiteDSN(t)))
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

// testdata/schema-v7.db was written by the store as it was before the drivers (schema
// version 7): a webhook with a delivered event, a spilled webhook owing one, a capture, a key,
// a session and a setting, and one more event published after the spill. It opens, keeps all of it, and ends on the current schema.
func TestDatabaseOfSchemaV7OpensWithItsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v7.db")
	copyFile(t, "testdata/schema-v7.db", path)
	s := open(t, path)
	ctx := context.Background()

	if got, want := schema(t, s), schema(t, open(t, storetest.SQLiteDSN(t))); got != want {
		t.Errorf("upgraded schema differs from a new database's:\n%s", got)
	}
	count := func(table string) int64 {
		t.Helper()
		var n int64
		if err := s.ScanSQL(ctx, &n, `SELECT COUNT(*) FROM `+table); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for table, want := range map[string]int64{"webhooks": 2, "events": 2, "deliveries": 3, "attempts": 2,
		"webhook_activity": 2, "webhook_spills": 1, "bins": 1, "captures": 1, "api_keys": 1, "sessions": 1} {
		if got := count(table); got != want {
			t.Errorf("%s: %d rows, want %d", table, got, want)
		}
	}
	w, err := s.GetWebhook(ctx, "wh_fixture_ok")
	if err != nil || w.Secret != "whsec_fixture" || !w.Enabled {
		t.Fatalf("webhook: %+v, %v", w, err)
	}
	if v, err := s.GetSetting(ctx, "fixture"); err != nil || v != "kept" {
		t.Errorf("setting: %q, %v", v, err)
	}
	if c, err := s.CountCaptures(ctx, "bin_fixture", 0); err != nil || c != 1 {
		t.Errorf("captures: %d, %v", c, err)
	}
	// The capture table was rebuilt (migration 17): the capture comes through it whole.
	c, err := s.GetCapture(ctx, "bin_fixture", "req_01a23de927cd792388c911cca2d3f7d0")
	if err != nil || c.Method != "POST" || c.Path != "/in/bin_fixture" || string(c.Body) != "hello" ||
		c.Size != 5 || c.Verdicts != "[]" || c.ReceivedAt.UnixNano() != 1796335020975862474 {
		t.Errorf("capture after the upgrade: %+v, %v", c, err)
	}
	spilled, err := s.SpilledWebhooks(ctx)
	if err != nil || len(spilled) != 1 || spilled[0] != "wh_fixture_spilled" {
		t.Fatalf("spilled: %v, %v", spilled, err)
	}
	// The spilled webhook still owes the event published after its spill, and takes it.
	took, err := s.TakeSpilled(ctx, store.TakeRequest{Owner: "t", Now: w.CreatedAt, Hooks: []store.OwedQuota{{WebhookID: "wh_fixture_spilled", Rows: 10}}})
	if err != nil || len(took["wh_fixture_spilled"].Taken) != 1 {
		t.Fatalf("take owed: %+v, %v", took, err)
	}
	ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{WebhookID: "wh_fixture_ok"}, models.Page{Limit: 10})
	// Newest first: the second event's delivery, pending, then the first's, sent.
	if err != nil || len(ds) != 2 || ds[0].Status != models.StatusPending ||
		ds[1].Status != models.StatusSucceeded || ds[1].AttemptCount != 1 {
		t.Fatalf("deliveries of the webhook: %d, %v", len(ds), err)
	}
	// And it works on: a publish reaches the webhook that is not spilled.
	if res := conformanceWebhookPublish(t, s); len(res.Deliveries) != 1 {
		t.Errorf("publish after the upgrade made %d delivery rows, want 1", len(res.Deliveries))
	}
}

func conformanceWebhookPublish(t *testing.T, s *store.Store) store.Published {
	t.Helper()
	res, err := s.Publish(context.Background(), []store.PublishInput{{Type: "message.received", Payload: []byte(`{}`)}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
