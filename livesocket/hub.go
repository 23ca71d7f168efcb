// Package livesocket is the server side of Hookrelay's WebSocket pushes (the inspector's bins,
// the admin change stream): topics with subscribed browsers, a bounded queue and one writer
// per client, ping/pong, and sockets that close when the credential they were opened with
// ends.
package livesocket

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// HubConfig tunes a Hub; zero values take the defaults.
type HubConfig struct {
	Name      string // names the hub in logs ("inspector")
	PublicURL string // its host is accepted as a browser Origin besides the request's Host
	// QueueSize bounds the messages buffered per client (1024). QueueBytes is the bound that
	// matters for memory; the count only has to hold what arrives in a burst (a group commit
	// of captures publishes dozens at once) before the client's writer gets its turn.
	QueueSize    int
	QueueBytes   int           // bytes buffered per client before it counts as too slow (1 MiB)
	PingInterval time.Duration // how often clients are pinged (20 s)
	PongWait     time.Duration // how long a client may stay silent, pongs included (60 s)
	WriteWait    time.Duration // how long one write may take (10 s)
	Logger       *slog.Logger
}

// Hub is a WebSocket fan-out by topic (a bin id, say). Publishing never waits for a client:
// each client has a bounded queue and its own writer goroutine, and a client whose queue is
// full is dropped (unregistered and closed under the hub's lock, so no one can send on its
// closed queue afterwards).
type Hub struct {
	cfg      HubConfig
	upgrader websocket.Upgrader
	mu       sync.Mutex
	topics   map[string]map[*client]struct{}
	closed   bool
}

type client struct {
	conn  *websocket.Conn // nil until the handshake is answered; set under the hub's lock
	cork  *corkedConn     // the connection under conn
	topic string
	send  chan []byte // closed by the hub, under its lock, when the client is unregistered
	auth  Credential
	// queued counts the bytes in send, so a client's queue is bounded in bytes as well as in
	// messages.
	queued atomic.Int64
	// why is the close reason sent when the hub drops the client (empty: going away).
	why string
}

// Credential is what a socket was opened with. A socket lives no longer than its credential:
// CloseCredential ends the sockets that carry one of its tags at once (logout, revocation on
// this process), and Valid is asked again at every ping, which also catches a credential
// ended on another replica or that expired.
type Credential struct {
	Tags  []string
	Valid func(ctx context.Context) bool // nil: always valid
}

// CloseCredential closes the sockets opened with a credential carrying tag.
func (h *Hub) CloseCredential(tag string) {
	if tag == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.topics {
		for c := range set {
			if slices.Contains(c.auth.Tags, tag) {
				c.why = "signed out"
				h.removeLocked(c)
			}
		}
	}
}

// NewHub builds a Hub.
func NewHub(cfg HubConfig) *Hub {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 1 << 20
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 20 * time.Second
	}
	if cfg.PongWait <= 0 {
		cfg.PongWait = 60 * time.Second
	}
	if cfg.WriteWait <= 0 {
		cfg.WriteWait = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Name == "" {
		cfg.Name = "websocket"
	}
	h := &Hub{cfg: cfg, topics: map[string]map[*client]struct{}{}}
	h.upgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 8192, CheckOrigin: h.checkOrigin}
	return h
}

// checkOrigin accepts browsers on this server's own origin (the request's Host, or the
// public URL's host behind a proxy that rewrites Host) and clients that send no Origin at
// all (scripts, which authenticate with a bearer token). The session cookie is SameSite=Strict
// as well; this check is what stops another site's page from opening the socket.
func (h *Hub) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	if pu, err := url.Parse(h.cfg.PublicURL); err == nil && pu.Host != "" {
		return strings.EqualFold(u.Host, pu.Host) && strings.EqualFold(u.Scheme, pu.Scheme)
	}
	return false
}

// Publish queues msg for every client of the topic without blocking.
func (h *Hub) Publish(topic string, msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.topics[topic] {
		if c.queued.Load()+int64(len(msg)) > int64(h.cfg.QueueBytes) {
			h.cfg.Logger.Info(h.cfg.Name+": dropping a WebSocket client that is not keeping up", "topic", topic)
			h.removeLocked(c)
			c.closeConn()
			continue
		}
		select {
		case c.send <- msg:
			c.queued.Add(int64(len(msg)))
		default:
			h.cfg.Logger.Info(h.cfg.Name+": dropping a WebSocket client that is not keeping up", "topic", topic)
			h.removeLocked(c)
			// Closing the connection unblocks its writer at once instead of after WriteWait.
			c.closeConn()
		}
	}
}

// Clients returns how many clients are subscribed to the topic.
func (h *Hub) Clients(topic string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.topics[topic])
}

// Close disconnects every client with a "going away" close frame; later upgrades are refused.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, set := range h.topics {
		for c := range set {
			h.removeLocked(c)
		}
	}
}

// CloseTopic disconnects the clients of one topic (its bin was deleted, say).
func (h *Hub) CloseTopic(topic string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.topics[topic] {
		h.removeLocked(c)
	}
}

// closeConn closes the client's connection if it has one yet; the hub's lock is held.
func (c *client) closeConn() {
	if c.conn != nil {
		_ = c.conn.Close()
	}
}

func (h *Hub) register(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	set := h.topics[c.topic]
	if set == nil {
		set = map[*client]struct{}{}
		h.topics[c.topic] = set
	}
	set[c] = struct{}{}
	return true
}

func (h *Hub) unregister(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(c)
}

// removeLocked forgets c and closes its queue, once; the writer then says goodbye and exits.
func (h *Hub) removeLocked(c *client) {
	set := h.topics[c.topic]
	if _, ok := set[c]; !ok {
		return
	}
	delete(set, c)
	if len(set) == 0 {
		delete(h.topics, c.topic)
	}
	close(c.send)
}

// ServeWS upgrades the request and streams the topic's messages until the client goes away.
// The caller has authenticated the request and checked that the topic may be read; fail, when not
// nil, answers a refused handshake (so the caller can use its own error format). It returns
// when the connection is finished; the writer goroutine ends with it.
func (h *Hub) ServeWS(w http.ResponseWriter, r *http.Request, topic string, auth Credential, fail func(status int, reason string)) {
	up := h.upgrader
	if fail != nil {
		up.Error = func(_ http.ResponseWriter, _ *http.Request, status int, reason error) { fail(status, reason.Error()) }
	}
	// Subscribed before the handshake's answer: a client whose dial has returned gets every
	// message published from then on (a capture posted right after the dial was lost when the
	// socket joined only after the 101). What arrives meanwhile waits in its queue.
	c := &client{topic: topic, send: make(chan []byte, h.cfg.QueueSize), auth: auth}
	registered := h.register(c)
	cw := &corkingWriter{ResponseWriter: w}
	conn, err := up.Upgrade(cw, r, nil)
	if err != nil {
		h.unregister(c)
		return // answered already
	}
	if !registered {
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(h.cfg.WriteWait))
		_ = conn.Close()
		return
	}
	h.mu.Lock()
	c.conn, c.cork = conn, cw.conn // read under the lock by Publish's drop; the goroutines below start after
	h.mu.Unlock()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		h.write(c)
	}()
	h.read(c)
	h.unregister(c)
	// Unblocks a writer stuck on a peer that vanished; gorilla allows Close concurrently.
	_ = conn.Close()
	<-writerDone
}

// read consumes what the client sends (nothing is expected but control frames) so that pongs
// and close frames are processed, and ends when the client is gone or silent too long.
func (h *Hub) read(c *client) {
	c.conn.SetReadLimit(4096)
	_ = c.conn.SetReadDeadline(time.Now().Add(h.cfg.PongWait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(h.cfg.PongWait))
	})
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			return
		}
	}
}

// write is the connection's only writer: queued messages, each burst in one write (see
// corkedConn), and pings, each under a deadline.
func (h *Hub) write(c *client) {
	ping := time.NewTicker(h.cfg.PingInterval)
	defer ping.Stop()
	fail := func() {
		h.unregister(c)
		_ = c.conn.Close()
	}
	for {
		select {
		case msg, ok := <-c.send:
			if !ok {
				h.goodbye(c)
				return
			}
			open, err := h.burst(c, msg)
			if err != nil {
				fail()
				return
			}
			if !open {
				h.goodbye(c)
				return
			}
		case <-ping.C:
			if !h.stillValid(c) {
				h.mu.Lock()
				c.why = "signed out"
				h.removeLocked(c)
				h.mu.Unlock()
				continue // the closed queue says goodbye
			}
			_ = c.conn.SetWriteDeadline(time.Now().Add(h.cfg.WriteWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				fail()
				return
			}
		}
	}
}

// burst writes msg and whatever else is queued already, up to maxBurst bytes, in one write.
// It reports whether the queue is still open.
func (h *Hub) burst(c *client, msg []byte) (open bool, err error) {
	c.cork.cork()
	open = true
	for {
		c.queued.Add(-int64(len(msg)))
		_ = c.conn.SetWriteDeadline(time.Now().Add(h.cfg.WriteWait))
		if err = c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			break
		}
		if c.cork.pending() >= maxBurst {
			break
		}
		var more bool
		select {
		case msg, open = <-c.send:
			more = open
		default:
		}
		if !more {
			break
		}
	}
	if ferr := c.cork.flush(h.cfg.WriteWait); err == nil {
		err = ferr
	}
	return open, err
}

// goodbye sends the close frame (policy violation when the credential ended) and closes.
func (h *Hub) goodbye(c *client) {
	h.mu.Lock()
	why := c.why
	h.mu.Unlock()
	code := websocket.CloseGoingAway
	if why != "" {
		code = websocket.ClosePolicyViolation
	}
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, why), time.Now().Add(h.cfg.WriteWait))
	_ = c.conn.Close()
}

func (h *Hub) stillValid(c *client) bool {
	if c.auth.Valid == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.WriteWait)
	defer cancel()
	return c.auth.Valid(ctx)
}
