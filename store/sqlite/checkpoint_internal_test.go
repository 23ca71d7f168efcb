package sqlite

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/wait"
)

// Under steady writes, checkpoints running beside the writer must still copy the WAL into
// the database file and let it start over, again and again, instead of holding all of it.
func TestCheckpointerKeepsTheWALShortUnderSteadyWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ckpt.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A quicker checkpointer than the default, so that a test-sized stream of writes
	// crosses its restart size many times.
	s.checkpoints.close()
	wdb, _ := s.Writer.DB()
	rdb, _ := s.Reader.DB()
	s.checkpoints = startCheckpointer(wdb, rdb, 10*time.Millisecond, 256<<10)

	if err := s.Writer.Exec(`CREATE TABLE blobs (b BLOB)`).Error; err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 8<<10)
	// Writes back to back, never idle: a checkpoint racing them alone never finds the WAL
	// fully copied, so it never starts over. The WAL header's checkpoint sequence number
	// (bytes 12-15) counts the restarts; sampling it says whether any happened, whatever
	// the machine's speed (how large the WAL gets between two depends on that).
	// At least 3000 writes (about 24 MiB, one small transaction each, like single publishes);
	// on a machine so busy that the checkpointer got no turn by then, up to 20000.
	const atLeast, atMost = 3000, 20000
	restarts, lastSeq := 0, walCheckpointSeq(t, path)
	writes := 0
	for ; writes < atMost && (writes < atLeast || restarts < 2); writes++ {
		_, _ = rand.Read(blob)
		if _, err := wdb.ExecContext(ctx, `INSERT INTO blobs (b) VALUES (?)`, blob); err != nil {
			t.Fatal(err)
		}
		if writes%16 == 0 {
			if seq := walCheckpointSeq(t, path); seq != lastSeq {
				restarts++
				lastSeq = seq
			}
		}
	}
	if restarts < 2 {
		t.Errorf("the WAL started over %d times under steady writes of %d MiB, want it to keep starting over", restarts, writes*len(blob)>>20)
	}
	written := int64(writes * len(blob))
	// The checkpointer may still be copying the last frames: wait (generously) for the file.
	var dbSize int64
	wait.For(func() bool { dbSize = fileSize(t, path); return dbSize >= written })
	if dbSize < written {
		t.Errorf("the database file holds %d bytes of the %d written: checkpoints did not copy the WAL in", dbSize, written)
	}
	var auto int
	if err := s.Writer.Raw(`PRAGMA wal_autocheckpoint`).Row().Scan(&auto); err != nil || auto != 0 {
		t.Errorf("the writer's wal_autocheckpoint is %d (%v), want 0: commits would checkpoint themselves", auto, err)
	}
}

// walCheckpointSeq reads the WAL header's checkpoint sequence number, which SQLite increments
// each time the WAL starts over.
func walCheckpointSeq(t *testing.T, dbPath string) uint32 {
	t.Helper()
	f, err := os.Open(dbPath + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var h [32]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0 // no header written yet
	}
	return binary.BigEndian.Uint32(h[12:16])
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
