package models

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Under steady writes, checkpoints running beside the writer must still copy the WAL into
// the database file and let it start over: the WAL stays a fraction of what was written
// instead of holding all of it.
func TestCheckpointerKeepsTheWALShortUnderSteadyWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ckpt.db")
	s, err := Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A quicker checkpointer than the default, so that a test-sized stream of writes
	// crosses its restart size many times.
	s.checkpoints.close()
	wdb, _ := s.W.DB()
	rdb, _ := s.R.DB()
	s.checkpoints = startCheckpointer(wdb, rdb, 10*time.Millisecond, 256<<10)

	if err := s.W.Exec(`CREATE TABLE blobs (b BLOB)`).Error; err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 8<<10)
	const writes = 3000 // about 24 MiB, one small transaction each, like single publishes
	for i := range writes {
		_, _ = rand.Read(blob)
		if _, err := wdb.ExecContext(ctx, `INSERT INTO blobs (b) VALUES (?)`, blob); err != nil {
			t.Fatal(err)
		}
		if i%500 == 0 {
			time.Sleep(20 * time.Millisecond) // let a few ticks land mid-stream
		}
	}
	written := int64(writes * len(blob))
	// The checkpointer may still be copying the last frames: wait (generously) for the file.
	deadline := time.Now().Add(30 * time.Second)
	var dbSize, walSize int64
	for {
		dbSize, walSize = fileSize(t, path), fileSize(t, path+"-wal")
		if dbSize >= written || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if dbSize < written {
		t.Errorf("the database file holds %d bytes of the %d written: checkpoints did not copy the WAL in", dbSize, written)
	}
	if walSize > written/4 {
		t.Errorf("the WAL is %d bytes after %d were written: it never started over", walSize, written)
	}
	var auto int
	if err := s.W.Raw(`PRAGMA wal_autocheckpoint`).Row().Scan(&auto); err != nil || auto != 0 {
		t.Errorf("the writer's wal_autocheckpoint is %d (%v), want 0: commits would checkpoint themselves", auto, err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
