package sqlcommon

import "sync"

// captureCounts knows how many captures each recently written bin holds, so that bounding a
// busy bin deletes just the rows beyond keep instead of walking the bin's newest keep index
// entries on every transaction (on SQLite that walk cost as much as the inserts it followed).
//
// Only a store that is the database's sole writer may keep it: every change to captures
// then passes through this Base, and its writer runs one transaction at a time. A count is
// changed inside the transaction that depends on it and trusted by the next only once that
// transaction committed (settle); until then, or after it failed, the next one counts again.
// Anything that deletes captures other than by bin forgets every count.
type captureCounts struct {
	mu   sync.Mutex
	n    map[string]captureCount
	next uint64
}

type captureCount struct {
	n       int64
	writer  uint64 // the transaction that set n
	settled bool   // writer committed
}

// begin returns a token for one transaction's changes.
func (c *captureCounts) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	return c.next
}

// get returns a bin's count when the transaction that last set it committed.
func (c *captureCounts) get(bin string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.n[bin]
	return e.n, ok && e.settled
}

func (c *captureCounts) set(writer uint64, bin string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]captureCount{}
	}
	// One entry per bin written since retention last ran (it forgets them all daily); a
	// deleted bin forgets its own.
	c.n[bin] = captureCount{n: n, writer: writer}
}

// settle trusts what writer set, now that it committed.
func (c *captureCounts) settle(writer uint64, bins []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range bins {
		if e, ok := c.n[b]; ok && e.writer == writer {
			e.settled = true
			c.n[b] = e
		}
	}
}

func (c *captureCounts) forget(bins ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range bins {
		delete(c.n, b)
	}
}

func (c *captureCounts) forgetAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = nil
}
