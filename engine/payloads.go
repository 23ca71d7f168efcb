package engine

import (
	"sync"
	"time"
)

// payloadCacheBytes bounds the event bodies the dispatcher keeps: about 15,000 bodies of 1 KiB.
// Published bodies go in as they commit, and each leaves once its whole fan-out has taken it,
// so what is held is the work in progress, not a window of history.
const payloadCacheBytes = 16 << 20

// Entries that keep the cache full are evicted only when they look abandoned: taken by part
// of the fan-out and then left waiting longer than waitedAfter (the rest is with endpoints
// that hang or lag, and reads it back when it gets there), or not taken at all for
// staleAfter. Younger ones are the queue's head: deliveries are taken in publish order, so
// when a burst outruns the senders the newest body is the one wanted last, and it is the one
// refused. Evicting oldest first instead throws away exactly the bodies about to be sent.
const (
	waitedAfter = time.Second
	staleAfter  = 10 * time.Second
)

// payloadCache shares event bodies between the deliveries of a fan-out, so each body is
// read from the database at most once (usually never: the publish hands it over) and every
// webhook's attempt sends the same bytes.
type payloadCache struct {
	mu       sync.Mutex
	m        map[string]*cachedBody
	fifo     []*cachedBody // in insertion order; fifo[head:] holds the live ones and some dead
	head     int
	dead     int // entries in fifo[head:] no longer in m
	bytes    int
	maxBytes int
	now      func() time.Time
}

type cachedBody struct {
	id    string
	b     []byte
	tp    string // the event's stored traceparent, for its attempts' spans
	left  int    // deliveries still expected to take it
	at    time.Time
	taken bool
}

func newPayloadCache(maxBytes int) *payloadCache {
	return &payloadCache{m: map[string]*cachedBody{}, maxBytes: maxBytes, now: time.Now}
}

func (e *cachedBody) size() int { return len(e.b) + len(e.id) }

// take returns the body of event id, and its traceparent, for n of its deliveries, or nil
// when it is not held. The body leaves the cache once all the deliveries it was put for have
// taken it.
func (c *payloadCache) take(id string, n int) ([]byte, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[id]
	if e == nil {
		return nil, ""
	}
	b, tp := e.b, e.tp
	e.taken = true
	if e.left -= n; e.left <= 0 {
		c.drop(e)
	}
	return b, tp
}

// put offers the body of event id, which deliveries more deliveries will take. It is refused
// when the cache is full of bodies still wanted sooner (see waitedAfter).
func (c *payloadCache) put(id string, b []byte, traceParent string, deliveries int) {
	size := len(b) + len(id)
	if deliveries <= 0 || size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; ok {
		return
	}
	now := c.now()
	for c.bytes+size > c.maxBytes {
		old := c.oldest()
		if old == nil {
			return
		}
		if age := now.Sub(old.at); age < staleAfter && !(old.taken && age >= waitedAfter) {
			return
		}
		c.drop(old)
	}
	e := &cachedBody{id: id, b: b, tp: traceParent, left: deliveries, at: now}
	c.m[id] = e
	c.bytes += size
	c.fifo = append(c.fifo, e)
	c.compact()
}

// oldest returns the oldest held body, skipping the dead entries at the front.
func (c *payloadCache) oldest() *cachedBody {
	for c.head < len(c.fifo) {
		e := c.fifo[c.head]
		if c.m[e.id] == e {
			return e
		}
		c.fifo[c.head] = nil
		c.head++
		c.dead--
	}
	return nil
}

func (c *payloadCache) drop(e *cachedBody) {
	delete(c.m, e.id)
	c.bytes -= e.size()
	e.b = nil // the fifo may hold the entry a while yet; not its body
	c.dead++
}

// compact rewrites the fifo without its dead entries once they are most of it, so a body
// held long (an endpoint that hangs) does not pin the slots of everything taken after it.
func (c *payloadCache) compact() {
	if c.dead < 1024 || c.dead < (len(c.fifo)-c.head)/2 {
		return
	}
	n := 0
	for _, e := range c.fifo[c.head:] {
		if c.m[e.id] == e {
			c.fifo[n] = e
			n++
		}
	}
	clear(c.fifo[n:])
	c.fifo, c.head, c.dead = c.fifo[:n], 0, 0
}
