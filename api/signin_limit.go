package api

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// signInLimiter slows down token guessing: failed sign-ins (a bad bearer token, a bad token at
// login) cost the client address one of its tries and the server one of its shared ones. An
// address out of tries waits for them to come back; when the shared tries run out (guessing
// spread over many addresses), addresses that have not signed in successfully lately wait too.
// An address that signed in successfully within knownGoodFor keeps being checked, so an
// attacker cannot lock out an admin who has used this server before from where they are.
// Valid session cookies are never limited: they are random 256-bit values, not guessable.
type signInLimiter struct {
	perAddr      rate.Limit
	addrBurst    int
	knownGoodFor time.Duration
	maxAddrs     int
	now          func() time.Time

	mu     sync.Mutex
	addrs  map[netip.Addr]*addrTries
	shared *rate.Limiter
}

type addrTries struct {
	tries     *rate.Limiter
	goodUntil time.Time
}

// SignInLimits configures the limiter; zero fields take the defaults.
type SignInLimits struct {
	PerAddressPerMinute float64 // tries an address gets back per minute (10)
	AddressBurst        int     // tries an address has at most (10)
	SharedPerMinute     float64 // tries all addresses together get back per minute (600)
	SharedBurst         int     // tries all addresses together have at most (200)
}

func newSignInLimiter(l SignInLimits) *signInLimiter {
	if l.PerAddressPerMinute <= 0 {
		l.PerAddressPerMinute = 10
	}
	if l.AddressBurst <= 0 {
		l.AddressBurst = 10
	}
	if l.SharedPerMinute <= 0 {
		l.SharedPerMinute = 600
	}
	if l.SharedBurst <= 0 {
		l.SharedBurst = 200
	}
	return &signInLimiter{perAddr: rate.Limit(l.PerAddressPerMinute / 60), addrBurst: l.AddressBurst,
		knownGoodFor: 30 * 24 * time.Hour, maxAddrs: 100_000, now: time.Now,
		addrs: map[netip.Addr]*addrTries{}, shared: rate.NewLimiter(rate.Limit(l.SharedPerMinute/60), l.SharedBurst)}
}

// wait says how long addr must wait before its next credential is even checked (0: go on).
// Checking nothing while it waits is what makes the limit hold: a valid token sent while
// locked out gets the same 429 as an invalid one.
func (l *signInLimiter) wait(addr netip.Addr) time.Duration {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.addrs[addr]
	if a != nil {
		if d := untilOne(a.tries, now); d > 0 {
			return d
		}
		if now.Before(a.goodUntil) {
			return 0
		}
	}
	return untilOne(l.shared, now)
}

// failed spends one try of addr and one shared try.
func (l *signInLimiter) failed(addr netip.Addr) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shared.AllowN(now, 1)
	if a := l.entry(addr, now); a != nil {
		a.tries.AllowN(now, 1)
	}
}

// succeeded marks addr as known good: it keeps its way in while guessing elsewhere has used up
// the shared tries.
func (l *signInLimiter) succeeded(addr netip.Addr) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.entry(addr, now); a != nil {
		a.goodUntil = now.Add(l.knownGoodFor)
	}
}

// entry returns addr's tries, created full. The table is bounded: past maxAddrs it drops the
// addresses that have all their tries and no standing, and if that is not enough a new address
// goes without an entry of its own (the shared tries still count its failures).
func (l *signInLimiter) entry(addr netip.Addr, now time.Time) *addrTries {
	if a := l.addrs[addr]; a != nil {
		return a
	}
	if len(l.addrs) >= l.maxAddrs {
		for k, a := range l.addrs {
			if a.tries.TokensAt(now) >= float64(l.addrBurst) && !now.Before(a.goodUntil) {
				delete(l.addrs, k)
			}
		}
		if len(l.addrs) >= l.maxAddrs {
			return nil
		}
	}
	a := &addrTries{tries: rate.NewLimiter(l.perAddr, l.addrBurst)}
	l.addrs[addr] = a
	return a
}

// untilOne is how long until lim has one token.
func untilOne(lim *rate.Limiter, now time.Time) time.Duration {
	missing := 1 - lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / float64(lim.Limit()) * float64(time.Second))
}

// clientAddr is the address the limits are kept for: the peer of the connection, or the
// client a trusted proxy names (Config.TrustedProxies; none by default).
func clientAddr(c *gin.Context) netip.Addr {
	a, err := netip.ParseAddr(c.ClientIP())
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// tooManySignIns answers 429 with Retry-After in whole seconds, rounded up.
func tooManySignIns(c *gin.Context, d time.Duration) {
	secs := int(math.Ceil(d.Seconds()))
	c.Header("Retry-After", strconv.Itoa(max(secs, 1)))
	problem(c, http.StatusTooManyRequests, "too many failed sign-ins: try again in "+strconv.Itoa(max(secs, 1))+" s")
}
