package sqlite

import "testing"

// A claim reads a snapshot taken when its query starts. A delivery whose result was recorded
// and released after that moment may still look due in it; the claim must not take it again.
func TestMemLeasesKeepARowReleasedDuringAClaimFromThatClaim(t *testing.T) {
	l := newMemLeases()
	start := l.begin(100)
	if got := l.takeOne("wh_1", 1, start, 100, 200); got != taken {
		t.Fatalf("first claim: %v, want taken", got)
	}
	l.bind(1, "dlv_1")
	l.end()

	start = l.begin(100) // a claim starts reading...
	l.release([]string{"dlv_1"})
	if got := l.takeOne("wh_1", 1, start, 100, 200); got != skippedStale { // ...and sees the row from before the release
		t.Fatalf("a claim older than the release: %v, want skippedStale", got)
	}
	l.end()
	if n := l.count("wh_1"); n != 1 {
		t.Errorf("entries kept while a claim was running: %d, want the tombstone", n)
	}

	start = l.begin(100) // a claim after the release sees the committed state
	if n := l.count("wh_1"); n != 0 {
		t.Errorf("tombstones left once no claim runs: %d, want 0", n)
	}
	if got := l.takeOne("wh_1", 1, start, 100, 200); got != taken {
		t.Errorf("a claim newer than the release: %v, want taken (the row is due again in its snapshot)", got)
	}
	l.end()
}

func TestMemLeasesExpire(t *testing.T) {
	l := newMemLeases()
	start := l.begin(100)
	l.takeOne("wh_1", 1, start, 100, 200)
	l.bind(1, "dlv_1")
	if got := l.takeOne("wh_1", 1, start, 150, 250); got != inFlight {
		t.Errorf("a live lease: %v, want inFlight", got)
	}
	if !l.live("dlv_1", 150) || l.live("dlv_1", 201) {
		t.Errorf("live at 150 = %v, at 201 = %v; want true, false", l.live("dlv_1", 150), l.live("dlv_1", 201))
	}
	if got := l.takeOne("wh_1", 1, start, 201, 300); got != taken {
		t.Errorf("an expired lease: %v, want taken over", got)
	}
	l.end()
	if n := l.count("wh_1"); n != 1 {
		t.Errorf("entries after a takeover: %d, want 1", n)
	}
}

// A rewind between reading the cursor and advancing it wins: the rows that made it rewind
// lie before the position the claim reached.
func TestClaimCursorKeepsARewindThatRacedAClaim(t *testing.T) {
	l := newMemLeases()
	_, r := l.cursorOf("wh_1")
	l.advance("wh_1", claimCursor{next: 100, rowid: 5}, r)
	c, r := l.cursorOf("wh_1")
	if c != (claimCursor{next: 100, rowid: 5}) {
		t.Fatalf("cursor %+v after advancing", c)
	}
	l.rewind("wh_1", 150) // work due after the cursor: nothing to rewind
	if c, _ := l.cursorOf("wh_1"); c.next != 100 {
		t.Fatalf("rewound for work after the cursor: %+v", c)
	}
	l.rewind("wh_1", 90) // a late commit due before it
	l.advance("wh_1", claimCursor{next: 120, rowid: 9}, r)
	if c, _ := l.cursorOf("wh_1"); c != (claimCursor{}) {
		t.Errorf("cursor %+v: a claim that began before the rewind moved it past the late work", c)
	}
}
