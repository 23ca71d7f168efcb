package inspector

import "github.com/hookrelay/hookrelay/livesocket"

// Publisher fans a capture out to a bin's live subscribers. Local does it for the clients
// connected to this process; Replicated also tells the other replicas (PostgreSQL
// LISTEN/NOTIFY), each of which pushes to its own.
type Publisher interface {
	// Publish announces capture captureID of bin binID; msg renders its message and is
	// called only when someone here is watching the bin, so an unwatched bin's captures
	// cost no encoding.
	Publish(binID, captureID string, msg func() []byte)
}

// Local is the Publisher of a single process: the hub's clients.
type Local struct{ Hub *Hub }

// Publish implements Publisher.
func (l Local) Publish(binID, _ string, msg func() []byte) { publishLocal(l.Hub, binID, msg) }

func publishLocal(h *Hub, binID string, msg func() []byte) {
	if h.Clients(binID) == 0 {
		return
	}
	if m := msg(); m != nil {
		h.Publish(binID, m)
	}
}

// The inspector's live sockets are livesocket's, one topic per bin.
type (
	Hub        = livesocket.Hub
	HubConfig  = livesocket.HubConfig
	Credential = livesocket.Credential
)

// NewHub builds the inspector's hub.
func NewHub(cfg HubConfig) *Hub {
	if cfg.Name == "" {
		cfg.Name = "inspector"
	}
	return livesocket.NewHub(cfg)
}
