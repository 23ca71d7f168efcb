package api

import (
	"net/netip"
	"testing"
	"time"
)

func TestSignInLimiterGivesTriesBackAndKeepsItsTableBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newSignInLimiter(SignInLimits{AddressBurst: 2, PerAddressPerMinute: 6, SharedBurst: 100, SharedPerMinute: 600})
	l.now = func() time.Time { return now }
	a := netip.MustParseAddr("192.0.2.1")

	l.failed(a)
	l.failed(a)
	if d := l.wait(a); d < 9*time.Second || d > 10*time.Second {
		t.Fatalf("after two failures wait %v, want about 10 s (one try back every 10 s)", d)
	}
	now = now.Add(10 * time.Second)
	if d := l.wait(a); d != 0 {
		t.Errorf("10 s later wait %v, want 0", d)
	}

	l.maxAddrs = 3
	for i := range 10 {
		l.failed(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	if len(l.addrs) > 3 {
		t.Errorf("table holds %d addresses, want at most 3", len(l.addrs))
	}
	// Addresses that have all their tries back make room for new ones.
	now = now.Add(time.Hour)
	l.failed(netip.MustParseAddr("203.0.113.1"))
	if l.addrs[netip.MustParseAddr("203.0.113.1")] == nil {
		t.Error("a new failing address found no room after the others recovered")
	}
}
