package inspector

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// A burst of captures leaves in as few announcements as PostgreSQL's payload limit allows,
// every capture once, in order; each payload reads back as what was queued.
func TestAnnouncementsCarryEveryCaptureOnce(t *testing.T) {
	queued := make(chan [2]string, 1000)
	var want [][2]string
	for i := range 500 {
		a := [2]string{models.NewBinID(), models.NewID("req")}
		if i%3 == 0 && i > 0 {
			a[0] = want[i-1][0] // several bins, captures of one bin in runs
		}
		want = append(want, a)
		queued <- a
	}
	var got [][2]string
	payloads := 0
	for len(queued) > 0 {
		p := nextAnnouncement("me", <-queued, queued)
		payloads++
		if len(p) >= 8000 {
			t.Fatalf("payload of %d bytes; PostgreSQL takes fewer than 8000", len(p))
		}
		sender, pairs, ok := announced(p)
		if !ok || sender != "me" {
			t.Fatalf("payload %.80q… reads back as %q, %v", p, sender, ok)
		}
		got = append(got, pairs...)
	}
	if !slices.Equal(got, want) {
		t.Errorf("announced %d captures, want the %d queued, in order", len(got), len(want))
	}
	if payloads > 8 {
		t.Errorf("%d payloads for 500 captures; each should hold about 75", payloads)
	}

	// One capture alone is one announcement, as before batching.
	if p := nextAnnouncement("me", [2]string{"bin", "req"}, queued); p != "me bin req" {
		t.Errorf("single announcement %q", p)
	}
	for _, bad := range []string{"", "me", "me bin", "me bin req bin2"} {
		if _, _, ok := announced(bad); ok {
			t.Errorf("announced(%q) accepted", bad)
		}
	}
}

// notes is a ReplicaStore that records what is announced, and when.
type notes struct {
	sent chan time.Time
}

func (n *notes) Notify(_ context.Context, _, _ string) error {
	n.sent <- time.Now()
	return nil
}

func (n *notes) Listen(ctx context.Context, _ string, _ func(string)) { <-ctx.Done() }

func (n *notes) GetCapture(context.Context, string, string) (*models.Capture, error) {
	return nil, models.ErrNotFound
}

// A capture arriving just after an announcement waits for the next one, announceEvery after
// it: a bin taking captures steadily costs at most one NOTIFY transaction per announceEvery
// rather than one per round trip.
func TestAnnouncementsAreSpacedOut(t *testing.T) {
	n := &notes{sent: make(chan time.Time, 10)}
	r := NewReplicated(n, NewHub(HubConfig{}), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	// The spacing runs from when the first announcement starts, which is after this
	// Publish and before the store hears it: measured from inside Notify, the first
	// announcement's time would include the work before the call and make the gap look short.
	before := time.Now()
	r.Publish(models.NewBinID(), models.NewID("req"), nil)
	<-n.sent
	r.Publish(models.NewBinID(), models.NewID("req"), nil)
	if gap := (<-n.sent).Sub(before); gap < announceEvery {
		t.Errorf("the next announcement went %v after the first was published, want at least %v", gap, announceEvery)
	}
}
