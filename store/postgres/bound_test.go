package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/postgres"
	"gorm.io/gorm"
)

// A capture is answered without waiting for its bin's bound: with the bin's stored captures
// locked by a transaction left open, the bound waits and the captures do not; once the lock
// goes, the bin is bounded.
func TestCapturesDoNotWaitForTheirBinsBound(t *testing.T) {
	requirePostgres(t)
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	s := open(t, dsn)
	bin := &models.Bin{Name: "busy"}
	if err := s.CreateBin(ctx, bin); err != nil {
		t.Fatal(err)
	}
	const keep = 3 // below ten every capture makes the bin due
	capture := func() *models.Capture {
		return &models.Capture{BinID: bin.ID, Method: "POST", Path: "/inspect/" + bin.ID, Headers: "{}",
			Body: []byte("{}"), ReceivedAt: time.Now().UTC(), Verdicts: "{}"}
	}
	for range keep {
		if err := s.InsertCapture(ctx, capture(), keep); err != nil {
			t.Fatal(err)
		}
	}
	stored := func() int64 {
		t.Helper()
		var n int64
		if err := rawConn(t, dsn).QueryRow(ctx, `SELECT count(*) FROM captures WHERE bin_id = $1`, bin.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	tx, err := rawConn(t, dsn).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT id FROM captures WHERE bin_id = $1 FOR UPDATE`, bin.ID); err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() {
		for range keep {
			if err := s.InsertCapture(ctx, capture(), keep); err != nil {
				answered <- err
				return
			}
		}
		answered <- nil
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("captures waited for their bin's bound, held up by a lock on the bin's old captures")
	}
	if n := stored(); n != 2*keep {
		t.Errorf("while its bound waits the bin stores %d captures, want %d", n, 2*keep)
	}
	if n, err := s.CountCaptures(ctx, bin.ID, keep); err != nil || n != keep {
		t.Errorf("while its bound waits the bin counts %d captures (%v), want %d", n, err, keep)
	}

	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n := stored(); n != keep; n = stored() {
		if time.Now().After(deadline) {
			t.Fatalf("the bin stores %d captures after the lock went, want %d", n, keep)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A bound commits without waiting for the WAL's flush (it only deletes what reads already
// hide), and its settings end with its transaction: the pool's connection, which next writes
// captures and deliveries, waits for its flush again.
func TestBoundCommitsWithoutWaitingForTheFlushAndLeavesThePoolAsItWas(t *testing.T) {
	d := openDriver(t)
	ctx := context.Background()
	sqlDB, err := d.Writer.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1) // the bound's connection is the one read after it
	settings := func(db interface {
		Raw(string, ...any) *gorm.DB
	}) (sync, bitmap string) {
		t.Helper()
		if err := db.Raw(`SELECT current_setting('synchronous_commit'), current_setting('enable_bitmapscan')`).Row().Scan(&sync, &bitmap); err != nil {
			t.Fatal(err)
		}
		return sync, bitmap
	}
	if sync, bitmap := settings(d.Writer); sync != "on" || bitmap != "on" {
		t.Fatalf("the server's defaults here are synchronous_commit %s, enable_bitmapscan %s; this test wants on and on", sync, bitmap)
	}
	err = d.Writer.Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(postgres.BoundPlanSQL).Error; err != nil {
			return err
		}
		if sync, bitmap := settings(tx); sync != "off" || bitmap != "off" {
			t.Errorf("inside a bound: synchronous_commit %s, enable_bitmapscan %s; want off and off", sync, bitmap)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.BoundCaptures(ctx, d, models.NewBinID(), 3); err != nil {
		t.Fatal(err)
	}
	if sync, bitmap := settings(d.Writer); sync != "on" || bitmap != "on" {
		t.Errorf("after a bound its connection has synchronous_commit %s, enable_bitmapscan %s; want on and on", sync, bitmap)
	}
}
