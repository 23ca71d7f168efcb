package sqlite

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// A bin becomes known when a capture transaction has found it, and stops being known inside
// its deletion's transaction; a bin never found never becomes known. (That a known bin's
// captures racing its deletion leave none behind is the conformance suite's
// CapturesRacingTheirBinsDeletionLeaveNoneBehind.)
func TestKnownBinsComeFromTheCheckAndGoWithTheDeletion(t *testing.T) {
	ctx := context.Background()
	d := openTemp(t)
	bin := &models.Bin{Name: "known"}
	if err := d.CreateBin(ctx, bin); err != nil {
		t.Fatal(err)
	}
	capture := func(binID string) []*models.Capture {
		return []*models.Capture{{BinID: binID, Method: "POST", Path: "/inspect/" + binID, Headers: "{}",
			Body: []byte(`{}`), ReceivedAt: time.Now().UTC(), Verdicts: "{}"}}
	}
	count := func() int64 {
		n, err := d.CountCaptures(ctx, bin.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if d.bins.all([]string{bin.ID}) {
		t.Fatal("a bin is known before any capture looked for it")
	}
	for i := range 3 {
		if err := d.InsertCaptures(ctx, capture(bin.ID), 0); err != nil {
			t.Fatal(err)
		}
		if !d.bins.all([]string{bin.ID}) {
			t.Fatalf("after capture %d the bin is not known", i+1)
		}
		if n := count(); n != int64(i+1) {
			t.Fatalf("after capture %d the bin holds %d", i+1, n)
		}
	}
	stranger := models.NewBinID()
	if err := d.InsertCaptures(ctx, capture(stranger), 0); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("capture into a bin that never existed: %v, want ErrNotFound", err)
	}
	if d.bins.all([]string{stranger}) {
		t.Error("a bin that never existed became known")
	}
	if err := d.DeleteBin(ctx, bin.ID); err != nil {
		t.Fatal(err)
	}
	if d.bins.all([]string{bin.ID}) {
		t.Fatal("a deleted bin is still known")
	}
	if err := d.InsertCaptures(ctx, capture(bin.ID), 0); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("capture into the deleted bin: %v, want ErrNotFound", err)
	}
	if n := count(); n != 0 {
		t.Fatalf("the deleted bin holds %d captures", n)
	}
}

// The set starts over once full, so that bins made and deleted without end cannot grow it.
func TestKnownBinsStartOverWhenFull(t *testing.T) {
	var k knownBins
	for i := range knownBinsMax {
		k.add([]string{fmt.Sprint(i)})
	}
	if !k.all([]string{"0", fmt.Sprint(knownBinsMax - 1)}) || len(k.m) != knownBinsMax {
		t.Fatalf("%d bins added, %d kept", knownBinsMax, len(k.m))
	}
	k.add([]string{"one more"})
	if len(k.m) != 1 || !k.all([]string{"one more"}) || k.all([]string{"0"}) {
		t.Fatalf("one more than the most: %d kept, want only the newest", len(k.m))
	}
}
