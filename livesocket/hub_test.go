package livesocket

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A client whose dial has returned gets what is published from then on: the socket joins its
// topic before the handshake is answered. (It joined after, and a message published right
// after the dial was lost now and then: the inspector's first capture, say.)
func TestAMessagePublishedRightAfterTheDialArrives(t *testing.T) {
	h := NewHub(HubConfig{Name: "test"})
	defer h.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeWS(w, r, r.URL.Path, Credential{}, nil)
	}))
	defer srv.Close()
	for i := range 200 {
		topic := fmt.Sprintf("/t%d", i)
		conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		h.Publish(topic, []byte("first"))
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := conn.ReadMessage()
		conn.Close()
		if err != nil || string(msg) != "first" {
			t.Fatalf("dial %d: read %q, %v; want the message published right after the dial", i, msg, err)
		}
	}
}
