package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/wait"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

func testBinStore(t *testing.T, b Backend) {
	ctx := context.Background()
	dsn := b.DSN(t)
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}

	bin := &models.Bin{Name: "b", Secret: "sec", ResponseStatus: 201, ResponseBody: "x", ResponseContentType: "text/plain"}
	if err := s.CreateBin(ctx, bin); err != nil {
		t.Fatal(err)
	}
	if len(bin.ID) != 48 {
		t.Errorf("bin id %q: want a UUIDv7 (32 hex, 74 random bits) + 16 hex (64 random bits)", bin.ID)
	}
	other := &models.Bin{Name: "other"}
	if err := s.CreateBin(ctx, other); err != nil {
		t.Fatal(err)
	}

	// Binary bodies come back byte for byte; the oldest beyond keep go.
	binary := []byte{0x00, 0xff, 0xfe, '\n', 0x80}
	var ids []string
	for i := range 5 {
		c := &models.Capture{BinID: bin.ID, Method: "POST", Path: "/inspect/" + bin.ID, Query: fmt.Sprintf("n=%d", i),
			Headers: "{}", Body: binary, Size: int64(len(binary)), ReceivedAt: time.Now().UTC(), Verdicts: "{}"}
		if err := s.InsertCapture(ctx, c, 3); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	if err := s.InsertCapture(ctx, &models.Capture{BinID: other.ID, Method: "GET", Path: "/", Headers: "{}",
		ReceivedAt: time.Now().UTC(), Verdicts: "{}"}, 3); err != nil {
		t.Fatalf("capture with no body: %v", err)
	}
	list, next, err := s.ListCaptures(ctx, bin.ID, models.Page{Limit: 2}, 1<<20, 3)
	if err != nil || len(list) != 2 || next == "" || list[0].ID != ids[4] || list[1].ID != ids[3] {
		t.Fatalf("first page: %d captures, next %q, err %v", len(list), next, err)
	}
	if !bytes.Equal(list[0].Body, binary) {
		t.Errorf("body %x, want %x", list[0].Body, binary)
	}
	// Below ten the bound is exact: the oldest two are gone, not only out of the list.
	for _, id := range ids[:2] {
		bounded(t, func() error {
			if _, err := s.GetCapture(ctx, bin.ID, id); !errors.Is(err, models.ErrNotFound) {
				return fmt.Errorf("capture %s beyond a bound of 3: %v, want ErrNotFound", id, err)
			}
			return nil
		})
	}
	// A list cuts bodies to the preview and paths to 1 KiB, and leaves headers out; one
	// capture read alone is whole.
	long := "/inspect/" + bin.ID + "/" + strings.Repeat("p", 3000)
	third := &models.Bin{Name: "third"}
	if err := s.CreateBin(ctx, third); err != nil {
		t.Fatal(err)
	}
	big := &models.Capture{BinID: third.ID, Method: "POST", Path: long, Headers: `{"X-Big":["` + strings.Repeat("h", 5000) + `"]}`,
		Body: bytes.Repeat([]byte("<"), 100_000), Size: 100_000, ReceivedAt: time.Now().UTC(), Verdicts: "{}"}
	if err := s.InsertCapture(ctx, big, 3); err != nil {
		t.Fatal(err)
	}
	sum, _, err := s.ListCaptures(ctx, third.ID, models.Page{Limit: 1}, 512, 3)
	if err != nil || len(sum) != 1 {
		t.Fatalf("summary list: %d, %v", len(sum), err)
	}
	if got := sum[0]; len(got.Body) != 512 || got.Size != 100_000 || len(got.Path) != 1024 || got.Headers != "" || got.Verdicts != "{}" {
		t.Errorf("summary: body %d bytes, size %d, path %d bytes, headers %q; want 512, 100000, 1024, none",
			len(got.Body), got.Size, len(got.Path), got.Headers)
	}
	if whole, err := s.GetCapture(ctx, third.ID, big.ID); err != nil || len(whole.Body) != 100_000 || whole.Path != long || len(whole.Headers) < 5000 {
		t.Errorf("the capture read alone is not whole: %v", err)
	}
	if err := s.DeleteBin(ctx, third.ID); err != nil {
		t.Fatal(err)
	}
	list, next, _ = s.ListCaptures(ctx, bin.ID, models.Page{Limit: 2, Cursor: next}, 1<<20, 3)
	if len(list) != 1 || list[0].ID != ids[2] || next != "" {
		t.Errorf("second page: %d captures (want only %s, the oldest kept), next %q", len(list), ids[2], next)
	}
	if _, err := s.GetCapture(ctx, other.ID, ids[4]); !errors.Is(err, models.ErrNotFound) {
		t.Errorf("a capture read through another bin: %v", err)
	}

	// A linked webhook that goes away leaves no dangling link.
	wh := &models.Webhook{Name: "w", URL: "https://example.com", Events: "message.received", Enabled: true}
	if err := s.CreateWebhook(ctx, wh); err != nil {
		t.Fatal(err)
	}
	other.WebhookID = wh.ID
	if err := s.UpdateBin(ctx, other); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetBin(ctx, other.ID); got == nil || got.WebhookID != wh.ID { // and now cached
		t.Fatalf("bin not linked: %+v", got)
	}
	if err := s.DeleteWebhook(ctx, wh.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetBin(ctx, other.ID); got == nil || got.WebhookID != "" {
		t.Errorf("bin still linked to a deleted webhook: %+v", got)
	}

	// Everything survives closing and reopening the database.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = b.Open(t, dsn)
	got, err := s.GetBin(ctx, bin.ID)
	if err != nil || got.Name != "b" || got.Secret != "sec" || got.ResponseStatus != 201 || got.ResponseContentType != "text/plain" {
		t.Fatalf("bin after reopen: %+v, %v", got, err)
	}
	if n, _ := s.CountCaptures(ctx, bin.ID, 3); n != 3 {
		t.Errorf("%d captures after reopen, want 3", n)
	}

	if err := s.DeleteBin(ctx, bin.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.CountCaptures(ctx, bin.ID, 3); n != 0 {
		t.Errorf("%d captures left after deleting the bin", n)
	}
	if n, _ := s.CountCaptures(ctx, other.ID, 3); n != 1 {
		t.Errorf("the other bin has %d captures, want 1", n)
	}
	if err := s.DeleteBin(ctx, bin.ID); !errors.Is(err, models.ErrNotFound) {
		t.Errorf("deleting twice: %v", err)
	}
	bins, _, err := s.ListBins(ctx, models.Page{Limit: 10})
	if err != nil || len(bins) != 1 || bins[0].ID != other.ID {
		t.Errorf("bins left: %d (%v)", len(bins), err)
	}
}

func testPruneDropsCapturesOlderThanRetention(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	bin := &models.Bin{Name: "old", ResponseStatus: 200}
	if err := s.CreateBin(ctx, bin); err != nil {
		t.Fatal(err)
	}
	old := &models.Capture{BinID: bin.ID, Method: "POST", Path: "/inspect/" + bin.ID, Headers: "{}", Body: []byte("old"),
		Verdicts: "{}", ReceivedAt: time.Now().UTC().Add(-48 * time.Hour)}
	fresh := &models.Capture{BinID: bin.ID, Method: "POST", Path: "/inspect/" + bin.ID, Headers: "{}", Body: []byte("new"),
		Verdicts: "{}", ReceivedAt: time.Now().UTC()}
	for _, c := range []*models.Capture{old, fresh} {
		if err := s.InsertCapture(ctx, c, 500); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Prune(ctx, time.Now().Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetCapture(ctx, bin.ID, old.ID); !errors.Is(err, models.ErrNotFound) {
		t.Errorf("capture older than retention kept: %v", err)
	}
	if _, err := s.GetCapture(ctx, bin.ID, fresh.ID); err != nil {
		t.Errorf("fresh capture pruned: %v", err)
	}
}

// A bin's bound counts what the bin holds after every kind of deletion: retention taking its
// oldest by age, a failed capture for a deleted bin, the bin deleted. None of them may make a
// later capture delete more than the bound asks, or fewer.
func testBinBoundFollowsEveryDeletion(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	const keep = 3
	bin := &models.Bin{Name: "bound"}
	if err := s.CreateBin(ctx, bin); err != nil {
		t.Fatal(err)
	}
	capture := func(bin string, age time.Duration) *models.Capture {
		return &models.Capture{BinID: bin, Method: "POST", Path: "/inspect/" + bin, Headers: "{}", Body: []byte("{}"),
			Verdicts: "{}", ReceivedAt: time.Now().UTC().Add(-age)}
	}
	holds := func(want int64, after string) {
		t.Helper()
		bounded(t, func() error {
			if n, err := s.CountCaptures(ctx, bin.ID, keep); err != nil || n != want {
				return fmt.Errorf("after %s the bin holds %d captures (%v), want %d", after, n, err, want)
			}
			return nil
		})
	}
	for _, age := range []time.Duration{48 * time.Hour, 48 * time.Hour, 0} {
		if err := s.InsertCapture(ctx, capture(bin.ID, age), keep); err != nil {
			t.Fatal(err)
		}
	}
	holds(keep, "filling it")
	if _, err := s.Prune(ctx, time.Now().Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	holds(1, "retention")
	if err := s.InsertCapture(ctx, capture(bin.ID, 0), keep); err != nil {
		t.Fatal(err)
	}
	holds(2, "one more after retention")
	if err := s.InsertCaptures(ctx, []*models.Capture{capture(bin.ID, 0), capture("gone", 0)}, keep); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("captures with one for a missing bin: %v, want ErrNotFound", err)
	}
	holds(2, "a refused transaction")
	// The same with the missing bin's capture after more rows than one statement inserts.
	many := make([]*models.Capture, 0, 41)
	for range 40 {
		many = append(many, capture(bin.ID, 0))
	}
	if err := s.InsertCaptures(ctx, append(many, capture("gone", 0)), keep); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("41 captures, the last for a missing bin: %v, want ErrNotFound", err)
	}
	holds(2, "a refused transaction of 41")
	for range 4 {
		if err := s.InsertCapture(ctx, capture(bin.ID, 0), keep); err != nil {
			t.Fatal(err)
		}
	}
	holds(keep, "four more")
	// A group of more captures than the bound lists its newest keep at once; the rest of it
	// is gone after the bin's next bound at the latest. (The ids sort above the stored ones
	// and in this order.)
	group := make([]*models.Capture, 5)
	for i := range group {
		group[i] = capture(bin.ID, 0)
		group[i].ID = fmt.Sprintf("req_z%d", i)
	}
	if err := s.InsertCaptures(ctx, group, keep); err != nil {
		t.Fatal(err)
	}
	listed, _, err := s.ListCaptures(ctx, bin.ID, models.Page{Limit: 10}, 16, keep)
	if err != nil || len(listed) != keep || listed[0].ID != "req_z4" || listed[keep-1].ID != "req_z2" {
		t.Fatalf("after a group of 5 the list holds %d captures from %v (%v), want req_z4 to req_z2", len(listed), listed, err)
	}
	last := capture(bin.ID, 0)
	last.ID = "req_z5"
	if err := s.InsertCapture(ctx, last, keep); err != nil {
		t.Fatal(err)
	}
	for _, c := range group[:3] {
		bounded(t, func() error {
			if _, err := s.GetCapture(ctx, bin.ID, c.ID); !errors.Is(err, models.ErrNotFound) {
				return fmt.Errorf("capture %s of the group, beyond the bound after one more: %v, want ErrNotFound", c.ID, err)
			}
			return nil
		})
	}
	holds(keep, "a group larger than the bound and one more")
	// The same id again is a new bin to the bound: none of the old one's count carries over.
	if err := s.DeleteBin(ctx, bin.ID); err != nil {
		t.Fatal(err)
	}
	again := &models.Bin{ID: bin.ID, Name: "again"}
	if err := s.CreateBin(ctx, again); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertCapture(ctx, capture(bin.ID, 0), keep); err != nil {
		t.Fatal(err)
	}
	holds(1, "deleting the bin and capturing once in its namesake")
}

// A bin's deletion takes its captures with it however they race it: a capture stored before
// the deletion goes with the bin, one after it is refused, and none is left behind where
// nothing lists or bounds it. Each bin has taken a capture before the race, which is when a
// store may know it without looking (SQLite's known bins), and the bound is small enough that
// groups which bound it race the deletion too.
func testCapturesRacingTheirBinsDeletionLeaveNoneBehind(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	const keep = 100
	capture := func(bin string, i int) *models.Capture {
		return &models.Capture{BinID: bin, Method: "POST", Path: "/inspect/" + bin, Headers: "{}",
			Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), ReceivedAt: time.Now().UTC(), Verdicts: "{}"}
	}
	for round := range 10 {
		bin := &models.Bin{Name: fmt.Sprintf("racing %d", round)}
		if err := s.CreateBin(ctx, bin); err != nil {
			t.Fatal(err)
		}
		if err := s.InsertCapture(ctx, capture(bin.ID, 0), keep); err != nil {
			t.Fatal(err)
		}
		var senders sync.WaitGroup
		var refused atomic.Int64
		for range 8 {
			senders.Go(func() {
				for i := 1; i <= 20_000; i++ {
					err := s.InsertCapture(ctx, capture(bin.ID, i), keep)
					if errors.Is(err, models.ErrNotFound) {
						refused.Add(1)
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wait.Until(t, "captures under way", func() bool {
			n, err := s.CountCaptures(ctx, bin.ID, keep)
			return err == nil && n >= 50
		})
		if err := s.DeleteBin(ctx, bin.ID); err != nil {
			t.Fatal(err)
		}
		senders.Wait()
		if refused.Load() != 8 {
			t.Fatalf("round %d: %d of 8 senders were refused after the deletion", round, refused.Load())
		}
		if n, err := s.CountCaptures(ctx, bin.ID, keep); err != nil || n != 0 {
			t.Fatalf("round %d: the deleted bin left %d captures behind (%v)", round, n, err)
		}
	}
}

// Captures arriving together share transactions: each caller still gets its own answer, a
// bin keeps exactly its newest keep, and a capture for a bin deleted meanwhile is refused
// without failing its neighbours.
func testConcurrentCapturesKeepTheirBinsBoundAndTheirOwnErrors(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	busy, quiet, gone := &models.Bin{Name: "busy"}, &models.Bin{Name: "quiet"}, &models.Bin{Name: "gone"}
	for _, bin := range []*models.Bin{busy, quiet, gone} {
		if err := s.CreateBin(ctx, bin); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteBin(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	const keep = 100
	capture := func(bin string, i int) *models.Capture {
		return &models.Capture{BinID: bin, Method: "POST", Path: "/inspect/" + bin, Headers: "{}",
			Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), ReceivedAt: time.Now().UTC(), Verdicts: "{}"}
	}
	type result struct {
		bin string
		err error
	}
	results := make(chan result)
	for i := range 241 {
		bin := busy.ID
		switch {
		case i%4 == 0:
			bin = quiet.ID
		case i == 121:
			bin = gone.ID
		}
		go func() { results <- result{bin, s.InsertCapture(ctx, capture(bin, i), keep)} }()
	}
	for range 241 {
		r := <-results
		switch {
		case r.bin == gone.ID && !errors.Is(r.err, models.ErrNotFound):
			t.Errorf("capture for a deleted bin: %v, want ErrNotFound", r.err)
		case r.bin != gone.ID && r.err != nil:
			t.Errorf("capture for a live bin: %v", r.err)
		}
	}
	for bin, want := range map[string]int64{busy.ID: keep, quiet.ID: 61, gone.ID: 0} {
		bounded(t, func() error {
			if n, err := s.CountCaptures(ctx, bin, keep); err != nil || n != want {
				return fmt.Errorf("bin %s holds %d captures (%v), want %d", bin, n, err, want)
			}
			return nil
		})
	}
	// The ones kept are the newest: ids sort by time.
	all, _, err := s.ListCaptures(ctx, busy.ID, models.Page{Limit: 200}, 16, keep)
	if err != nil || len(all) != keep {
		t.Fatalf("list: %d, %v", len(all), err)
	}
	if err := s.InsertCapture(ctx, capture(busy.ID, 999), keep); err != nil {
		t.Fatal(err)
	}
	after, _, err := s.ListCaptures(ctx, busy.ID, models.Page{Limit: 200}, 16, keep)
	if err != nil || len(after) != keep || after[keep-1].ID != all[keep-2].ID {
		t.Fatalf("after one more the list holds %d, %v; want the newest %d", len(after), err, keep)
	}
	// Beyond the bound a capture may linger unlisted until its bin is next bounded, a tenth
	// of keep captures later at most.
	for i := range keep / 10 {
		if err := s.InsertCapture(ctx, capture(busy.ID, 1000+i), keep); err != nil {
			t.Fatal(err)
		}
	}
	bounded(t, func() error {
		if _, err := s.GetCapture(ctx, busy.ID, all[keep-1].ID); !errors.Is(err, models.ErrNotFound) {
			return fmt.Errorf("the oldest capture outlived a tenth of the bound more: %v", err)
		}
		return nil
	})
}

// bounded fails t unless check passes within a few seconds. A bin's bound deletes its oldest
// captures in the transaction that stores the capture making it due on SQLite, and just after
// that transaction commits, apart from it, on PostgreSQL: what a bound deletes is gone at once
// on one and a moment later on the other.
func bounded(t *testing.T, check func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A bin read after a change through the same store shows the change at once; on PostgreSQL
// another replica's change shows within a few seconds.
func testBinReadsFollowChanges(t *testing.T, b Backend) {
	dsn := b.DSN(t)
	s := b.Open(t, dsn)
	ctx := context.Background()
	early := &models.Bin{ID: models.NewBinID(), Name: "early"}
	if _, err := s.GetBin(ctx, early.ID); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("bin before it exists: %v", err)
	}
	if err := s.CreateBin(ctx, early); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetBin(ctx, early.ID); err != nil || got.Name != "early" {
		t.Fatalf("bin right after its creation: %+v, %v", got, err)
	}
	got, _ := s.GetBin(ctx, early.ID)
	got.Name = "changed by a caller"
	if again, _ := s.GetBin(ctx, early.ID); again.Name != "early" {
		t.Errorf("a caller's change to its copy reached the store's: %q", again.Name)
	}
	early.ResponseStatus = 418
	if err := s.UpdateBin(ctx, early); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetBin(ctx, early.ID); err != nil || got.ResponseStatus != 418 {
		t.Errorf("bin right after an update: %+v, %v", got, err)
	}
	if b.Name != "postgres" {
		if err := s.DeleteBin(ctx, early.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetBin(ctx, early.ID); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("bin right after its deletion: %v", err)
		}
		return
	}
	other := b.Open(t, dsn)
	early.ResponseStatus = 202
	if err := other.UpdateBin(ctx, early); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, "another replica's update", func() bool {
		got, err := s.GetBin(ctx, early.ID)
		return err == nil && got.ResponseStatus == 202
	})
	if err := other.DeleteBin(ctx, early.ID); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, "another replica's deletion", func() bool {
		_, err := s.GetBin(ctx, early.ID)
		return errors.Is(err, models.ErrNotFound)
	})
}
