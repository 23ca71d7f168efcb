package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"time"
)

const (
	// checkpointEvery is how often the background checkpointer folds the SQLite WAL back
	// into the database file: about 9 MB each time at the latency bench's 90 MB/s.
	checkpointEvery = 100 * time.Millisecond
	// walRestartBytes is the WAL size past which the checkpointer also lets the writer start
	// the WAL over (see checkpointer): a few times a second at 90 MB/s.
	walRestartBytes = 16 << 20
	// tailFrames is how few new frames the last background pass must have found before the
	// writer finishes the checkpoint itself.
	tailFrames = 64
)

// checkpointer runs SQLite's WAL checkpoints beside the writer instead of inside it.
//
// By default SQLite checkpoints in whichever commit pushes the WAL past 1,000 pages: that
// commit copies megabytes into the database file and syncs it while every publish and
// record behind it waits on the one writer, several times a second under load. Here
// PASSIVE checkpoints on a reader connection do the copying ten times a second; they take
// no lock that writers or readers wait for. (Once a second was worse: each pass then
// flushed about 90 MB to disk at once, and the writer's own writes sometimes stalled
// behind that, for p99s of 50 ms.)
//
// A WAL only starts over when a writer finds every frame of it copied, which a checkpoint
// racing the writer never achieves under steady load: alone it would let the WAL grow
// without end. So once the WAL passes walRestartBytes, the background passes repeat until
// one finds only a few new frames, and a last PASSIVE checkpoint runs on the writer's own
// connection, between two transactions, copying those few. The next transaction starts the
// WAL over. The WAL file is overwritten in place from then on, and only cut back past
// journal_size_limit (256 MiB): cutting it on every restart and growing it again cost more
// than the restart itself.
//
// Measured in the latency bench (1,000 single publishes a second, which write about
// 90 MB/s of WAL with 8 KiB pages): ingest-to-receipt p99 25–36 ms with SQLite's own
// checkpoints, 6–11 ms with these; with 4 KiB pages and SQLite's own, 14–40 ms.
type checkpointer struct {
	writer, reader *sql.DB
	every          time.Duration
	restartBytes   int64
	pageSize       int64 // read once: an open file's page size never changes
	stop           chan struct{}
	done           chan struct{}
	closing        sync.Once
}

func startCheckpointer(writer, reader *sql.DB, every time.Duration, restartBytes int64) *checkpointer {
	c := &checkpointer{writer: writer, reader: reader, every: every, restartBytes: restartBytes,
		stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(c.every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		err := c.once()
		switch {
		case err != nil && !failing:
			// Logged once per run of failures: the WAL keeps every commit meanwhile, so
			// nothing is lost, but it grows until a checkpoint succeeds.
			slog.Warn("sqlite checkpoint failed; the WAL file grows until one succeeds", "err", err)
			failing = true
		case err == nil && failing:
			slog.Info("sqlite checkpoints succeed again")
			failing = false
		}
	}
}

// once checkpoints in the background and, when the WAL has grown past c.restartBytes,
// finishes on the writer so that the WAL starts over.
func (c *checkpointer) once() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c.pageSize == 0 {
		if err := c.reader.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&c.pageSize); err != nil {
			return err
		}
	}
	// Each pass copies what the writer added during the one before, so the passes shrink;
	// they stop once a pass found fewer than tailFrames new frames, about what the writer
	// then waits for (a fraction of a millisecond to a few).
	prev := -1
	for pass := 0; pass < 8; pass++ {
		frames, err := checkpointOn(ctx, c.reader)
		if err != nil {
			return err
		}
		if int64(frames)*c.pageSize < c.restartBytes {
			return nil
		}
		if prev >= 0 && frames-prev < tailFrames {
			break
		}
		prev = frames
	}
	_, err := checkpointOn(ctx, c.writer)
	return err
}

// checkpointOn runs a PASSIVE checkpoint on one connection of db and returns the WAL's
// length in frames.
func checkpointOn(ctx context.Context, db *sql.DB) (frames int, err error) {
	var busy, copied int
	err = db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
	return frames, err
}

// close stops the checkpointer. Closing the last connection then checkpoints what is left
// and removes the WAL, as SQLite always does.
func (c *checkpointer) close() {
	c.closing.Do(func() { close(c.stop) })
	<-c.done
}
