package sqlite_test

import (
	"context"
	"slices"
	"testing"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/store/conformance"
)

// Attempts finish out of order. The stored position passes only events whose rows are
// written, so after a restart (the in-memory part gone) what was in flight is taken again,
// and what was recorded past the position is not.
func TestTakeAfterARestartSkipsWhatWasRecordedOutOfOrder(t *testing.T) {
	dsn := storetest.SQLiteDSN(t)
	s := storetest.Open(t, dsn)
	w, want := conformance.SpilledWith(t, s, 4)
	ctx := context.Background()
	first := conformance.TakeOnly(t, s, w.ID, 3)
	tk := first.Taken
	if len(tk) != 3 || !first.More {
		t.Fatalf("took %d (more: %v), want 3 and more to come", len(tk), first.More)
	}
	// The third finishes; the first two are still in flight when the process dies.
	if err := s.RecordResults(ctx, conformance.Delivered(tk[2])); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := storetest.Open(t, dsn)
	second := conformance.TakeOnly(t, s2, w.ID, 10)
	retaken := second.Taken
	if second.More {
		t.Errorf("a take of 10 that found 4 says more may be owed")
	}
	var again []string
	for _, d := range retaken {
		again = append(again, d.EventID)
	}
	if wantAgain := []string{want[0], want[1], want[3]}; !slices.Equal(again, wantAgain) {
		t.Fatalf("taken after the restart: %v, want %v (the in-flight two and the untaken fourth)", again, wantAgain)
	}
	if err := s2.RecordResults(ctx, conformance.Delivered(retaken...)); err != nil {
		t.Fatal(err)
	}
	if rows := conformance.RowsOf(t, s2, w.ID); !conformance.SameSet(rows, want) {
		t.Errorf("rows: %v, want each of %v once", rows, want)
	}
	if spilled, _ := s2.SpilledWebhooks(ctx); len(spilled) != 0 {
		t.Errorf("still spilled after everything was recorded: %v", spilled)
	}
}
