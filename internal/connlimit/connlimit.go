// Package connlimit bounds the connections a server holds open, in total and per client
// address, so that clients that open connections and then trickle (or send nothing) cannot
// use up the process's file descriptors. A connection over a limit is accepted and closed at
// once rather than left waiting in the kernel's queue, where it would delay the clients
// behind it.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Limits are the most connections held open at once; 0 leaves that limit off.
type Limits struct {
	Total      int
	PerAddress int
}

// Listener wraps ln so that it never hands out more connections than limits allow.
func Listener(ln net.Listener, limits Limits) *Limited {
	return &Limited{Listener: ln, limits: limits, perAddr: map[netip.Addr]int{}}
}

// Limited is a listener under Limits.
type Limited struct {
	net.Listener
	limits  Limits
	open    atomic.Int64
	refused atomic.Int64

	mu      sync.Mutex
	perAddr map[netip.Addr]int
}

// Open is the number of connections handed out and not yet closed.
func (l *Limited) Open() int { return int(l.open.Load()) }

// OpenFrom is the number of connections open from addr (counted only under a per-address limit).
func (l *Limited) OpenFrom(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perAddr[addr]
}

// Refused is the number of connections closed on arrival because a limit was reached.
func (l *Limited) Refused() int { return int(l.refused.Load()) }

// Accept returns the next connection within the limits; those beyond are closed unread.
func (l *Limited) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := peer(c)
		if !l.take(addr) {
			l.refused.Add(1)
			c.Close()
			continue
		}
		return &conn{Conn: c, l: l, addr: addr}, nil
	}
}

func (l *Limited) take(addr netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limits.Total > 0 && int(l.open.Load()) >= l.limits.Total {
		return false
	}
	if l.limits.PerAddress > 0 && addr.IsValid() {
		if l.perAddr[addr] >= l.limits.PerAddress {
			return false
		}
		l.perAddr[addr]++
	}
	l.open.Add(1)
	return true
}

func (l *Limited) release(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limits.PerAddress > 0 && addr.IsValid() {
		if l.perAddr[addr]--; l.perAddr[addr] <= 0 {
			delete(l.perAddr, addr)
		}
	}
	l.open.Add(-1)
}

func peer(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// conn gives its place back once, when first closed (net/http may close a connection twice).
type conn struct {
	net.Conn
	l      *Limited
	addr   netip.Addr
	closed sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.closed.Do(func() { c.l.release(c.addr) })
	return err
}
