package sqlcommon

import (
	"slices"
	"testing"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store/storedriver"
)

func rowsFor(webhookID string, n int) []*models.Delivery {
	ds := make([]*models.Delivery, n)
	for i := range ds {
		ds[i] = &models.Delivery{WebhookID: webhookID}
	}
	return ds
}

// Rows that publishes under way are writing count toward a webhook's backlog before any of
// them commits: the first publishes of a burst look at the backlog and spill the webhook once
// what they write together reaches the threshold, and stop counting once they are done.
func TestRowsUnderWayCountTowardASpill(t *testing.T) {
	p := NewSpillPolicy()
	p.SpillWhenPending(storedriver.SpillThreshold{Due: 32, Pending: 256})
	if check := p.TakeChecks(); len(check.IDs) != 0 {
		t.Fatalf("looks before any row: %v, want none", check.IDs)
	}
	var dones []func()
	for range 2 {
		dones = append(dones, p.Underway(rowsFor("wh_a", 100)))
	}
	dones = append(dones, p.Underway(rowsFor("wh_b", 10)))
	check := p.TakeChecks()
	if !slices.Equal(check.IDs, []string{"wh_a"}) {
		t.Fatalf("looks with 200 rows under way for wh_a and 10 for wh_b: %v, want wh_a", check.IDs)
	}
	nothingYet := map[string]Backlog{"wh_a": {}}
	if got := p.Decide(nothingYet, nil); len(got) != 0 {
		t.Fatalf("spilled with 200 rows under way and nothing committed: %v, want none (threshold 256)", got)
	}
	dones = append(dones, p.Underway(rowsFor("wh_a", 100)))
	if got := p.Decide(nothingYet, nil); !slices.Equal(got, []string{"wh_a"}) {
		t.Fatalf("with 300 rows under way: %v, want wh_a spilled", got)
	}
	for _, done := range dones {
		done()
		done() // a second call changes nothing
	}
	if got := p.Decide(nothingYet, nil); len(got) != 0 {
		t.Errorf("spilled after the publishes were done: %v, want none", got)
	}
	if check := p.TakeChecks(); len(check.IDs) != 0 {
		t.Errorf("looks after the publishes were done, with nothing written: %v, want none", check.IDs)
	}
	// Rows written count as before: a look every 32.
	p.WroteRows(rowsFor("wh_b", 32))
	if check := p.TakeChecks(); !slices.Equal(check.IDs, []string{"wh_b"}) {
		t.Errorf("looks after 32 rows written for wh_b: %v, want wh_b", check.IDs)
	}
}
