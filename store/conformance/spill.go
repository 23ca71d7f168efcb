package conformance

import (
	"context"
	"testing"
)

// SQLite spills; PostgreSQL does not: there every delivery gets its row at publish.
func testSpillOnlyOnSQLite(t *testing.T, b Backend) {
	s := b.Open(t, b.DSN(t))
	ctx := context.Background()
	w := NewWebhook(t, s, "message.received", true)
	got, err := s.Spill(ctx, []string{w.ID})
	if err != nil {
		t.Fatal(err)
	}
	wantSpill := b.Name == "sqlite"
	if got[w.ID] != wantSpill || s.SpillSupported() != wantSpill {
		t.Fatalf("spilled %v (supported %v), want %v", got[w.ID], s.SpillSupported(), wantSpill)
	}
	wantRows := 1
	if wantSpill {
		wantRows = 0
	}
	if p := Publish(t, s, "message.received", ""); len(p.Deliveries) != wantRows || p.Event.DeliveryCount != 1 {
		t.Errorf("rows at publish: %d (count %d), want %d (count 1)", len(p.Deliveries), p.Event.DeliveryCount, wantRows)
	}
}
