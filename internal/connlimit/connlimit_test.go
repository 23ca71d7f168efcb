package connlimit

import (
	"net"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/wait"
)

func TestListenerClosesConnectionsBeyondItsLimitsAndGivesPlacesBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listener(ln, Limits{Total: 3, PerAddress: 2})
	defer l.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial("127.0.0.2")
	dial("127.0.0.2")
	dial("127.0.0.2") // over the per-address limit
	dial("127.0.0.3")
	dial("127.0.0.4") // over the total
	wait.Until(t, "three accepted and two refused", func() bool { return l.Open() == 3 && l.Refused() == 2 })

	first := <-accepted
	first.Close()
	first.Close() // closing twice gives the place back once
	wait.Until(t, "the place is back", func() bool { return l.Open() == 2 })
	dial("127.0.0.2")
	wait.Until(t, "the address may connect again", func() bool { return l.Open() == 3 && l.Refused() == 2 })
}
