package livesocket

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// burstPair dials a real socket to a server that upgrades it as ServeWS does, and returns the
// dialling side and the server's client, whose writer the test runs by hand.
func burstPair(t *testing.T, h *Hub, queue int) (*websocket.Conn, *client) {
	t.Helper()
	got := make(chan *client, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &corkingWriter{ResponseWriter: w}
		conn, err := h.upgrader.Upgrade(cw, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		got <- &client{conn: conn, cork: cw.conn, send: make(chan []byte, queue)}
	}))
	t.Cleanup(srv.Close)
	dialed, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close() })
	c := <-got
	t.Cleanup(func() { c.conn.Close() })
	return dialed, c
}

func readAll(t *testing.T, conn *websocket.Conn, want [][]byte) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i, w := range want {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(msg, w) {
			t.Fatalf("message %d is %.40q, want %.40q", i, msg, w)
		}
	}
}

// What is queued when the writer wakes leaves in one write, as separate messages in order; a
// burst larger than maxBurst in a few.
func TestQueuedMessagesLeaveTogether(t *testing.T) {
	h := NewHub(HubConfig{Name: "test"})
	for _, tc := range []struct {
		name      string
		n, size   int
		maxWrites int
	}{
		{"small", 200, 100, 1},
		{"beyond maxBurst", 100, 2048, 4}, // 32 frames of 2 KiB fill a burst
	} {
		t.Run(tc.name, func(t *testing.T) {
			dialed, c := burstPair(t, h, tc.n)
			var msgs [][]byte
			for i := range tc.n {
				msgs = append(msgs, fmt.Appendf(nil, "%04d%s", i, bytes.Repeat([]byte("x"), tc.size-4)))
			}
			for _, m := range msgs[1:] {
				c.send <- m
			}
			before := c.cork.writes // the handshake's answer
			open, err := h.burst(c, msgs[0])
			for err == nil && open && len(c.send) > 0 {
				open, err = h.burst(c, <-c.send)
			}
			if err != nil || !open {
				t.Fatalf("burst: open %v, %v", open, err)
			}
			if w := c.cork.writes - before; w < 1 || w > tc.maxWrites {
				t.Errorf("%d messages of %d bytes took %d writes, want 1 to %d", tc.n, tc.size, w, tc.maxWrites)
			}
			readAll(t, dialed, msgs)
			if q := c.queued.Load(); q != -int64(tc.n*tc.size) {
				// queued counts down what the test put on send without Publish's count up.
				t.Errorf("queued %d, want %d", q, -tc.n*tc.size)
			}
		})
	}
}

// A queue closed in the middle of a burst still sends what came before it, then the close.
func TestABurstEndsWithItsClosedQueue(t *testing.T) {
	h := NewHub(HubConfig{Name: "test"})
	dialed, c := burstPair(t, h, 8)
	c.send <- []byte("two")
	close(c.send)
	open, err := h.burst(c, []byte("one"))
	if err != nil || open {
		t.Fatalf("burst: open %v, %v; want the queue reported closed", open, err)
	}
	h.goodbye(c)
	readAll(t, dialed, [][]byte{[]byte("one"), []byte("two")})
	if _, _, err := dialed.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("after the burst: %v, want a going-away close", err)
	}
}

// Through ServeWS: a thousand messages published at once arrive whole and in order while the
// client's pings are answered.
func TestAPublishedFloodArrivesInOrder(t *testing.T) {
	h := NewHub(HubConfig{Name: "test", QueueSize: 2000, QueueBytes: 8 << 20})
	defer h.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeWS(w, r, "flood", Credential{}, nil)
	}))
	defer srv.Close()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pong := make(chan struct{}, 1)
	conn.SetPongHandler(func(string) error {
		select {
		case pong <- struct{}{}:
		default:
		}
		return nil
	})
	var msgs [][]byte
	for i := range 1000 {
		msgs = append(msgs, fmt.Appendf(nil, "message %d %s", i, bytes.Repeat([]byte("y"), i%700)))
	}
	for i, m := range msgs {
		h.Publish("flood", m)
		if i == 500 {
			if err := conn.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(5*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	readAll(t, conn, msgs)                       // the pong handler runs as reads pass it
	go func() { _, _, _ = conn.ReadMessage() }() // for a pong that came after the last message
	select {
	case <-pong:
	case <-time.After(10 * time.Second):
		t.Fatal("the ping sent during the flood was never answered")
	}
}
