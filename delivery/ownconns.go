package delivery

import (
	"context"
	"net"
	"sync"
	"syscall"
)

// ownConns knows the local addresses of the connections this sender has open to its own
// server's inspector. The inspector asks about a request's remote address: if it is one of
// these, the request is this server's own delivery. A port on this host belongs to one
// socket at a time, so a sender elsewhere cannot pose as one (a header could be copied).
type ownConns struct {
	mu    sync.Mutex
	addrs map[string]struct{}
}

func newOwnConns() *ownConns { return &ownConns{addrs: map[string]struct{}{}} }

// dial wraps a dial function so that each connection it makes is known until it is closed.
func (o *ownConns) dial(inner func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := inner(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		local := c.LocalAddr().String()
		o.mu.Lock()
		o.addrs[local] = struct{}{}
		o.mu.Unlock()
		return &ownConn{Conn: c, o: o, local: local}, nil
	}
}

func (o *ownConns) has(remoteAddr string) bool {
	o.mu.Lock()
	_, ok := o.addrs[remoteAddr]
	o.mu.Unlock()
	return ok
}

// ownConn forgets its address when closed.
type ownConn struct {
	net.Conn
	o     *ownConns
	local string
	once  sync.Once
}

func (c *ownConn) Close() error {
	c.once.Do(func() {
		c.o.mu.Lock()
		delete(c.o.addrs, c.local)
		c.o.mu.Unlock()
	})
	return c.Conn.Close()
}

// SyscallConn lets the pool's liveness peek read the socket under the wrapper.
func (c *ownConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, syscall.EINVAL
}
