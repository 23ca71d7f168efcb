package inspector

import "github.com/hookrelay/hookrelay/livesocket"

// Publisher fans a capture message out to a bin's live subscribers. Hub does it for the
// clients connected to this process; a cross-replica fan-out (PostgreSQL LISTEN/NOTIFY) can
// implement it by notifying every replica, each of which calls its own Hub.Publish.
type Publisher interface {
	Publish(binID string, msg []byte)
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
