package livesocket

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"time"
)

// A client's writer sends what its queue holds in bursts: gorilla writes every frame to the
// connection as its own write, one system call per message, which for a watched bin taking
// captures as fast as senders send them was a system call per capture on the server and a
// read per capture in the browser. While the writer drains a burst the connection is corked:
// frames collect in a buffer and leave together when the burst is drained or maxBurst is
// reached.

// maxBurst bounds the bytes a corked connection collects before they are written: a burst
// goes out in a few large writes, and a client's buffer stays small next to its queue's bound.
const maxBurst = 64 << 10

// corkedConn is the hijacked connection under a gorilla Conn. Uncorked, writes pass straight
// through; corked, they are appended in order to buf until flush. Control frames that
// gorilla's reader writes meanwhile (a pong, a close's echo) wait in the same buffer, so
// frames never interleave, and leave with the burst's flush moments later.
type corkedConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    []byte
	writes int // writes made to the connection, for tests
}

func (c *corkedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	c.writes++
	return c.Conn.Write(p)
}

func (c *corkedConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// pending is how many bytes wait for the flush.
func (c *corkedConn) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buf)
}

// flush writes what collected, within wait, and uncorks.
func (c *corkedConn) flush(wait time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if len(c.buf) == 0 {
		return nil
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(wait))
	c.writes++
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > 2*maxBurst {
		c.buf = nil // one huge message need not stay allocated
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

// corkingWriter hands gorilla's Upgrade a corkedConn when it hijacks the connection.
type corkingWriter struct {
	http.ResponseWriter
	conn *corkedConn
}

func (w *corkingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &corkedConn{Conn: nc}
	return w.conn, brw, nil
}
