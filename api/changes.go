package api

import (
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/changes"
	"github.com/hookrelay/hookrelay/livesocket"
	"github.com/hookrelay/hookrelay/store"
)

// ChangeFeed is the admin change stream (changes.Feed): the API notes what its writes changed,
// and serves the stream's sockets from its hub.
type ChangeFeed interface {
	Note(kind changes.Kind, ids ...string)
	Many(kinds ...changes.Kind)
	Hub() *livesocket.Hub
}

// changedBy maps a write route to the kind of object it changes, named by its :id parameter.
// A write that creates one names it in its Location header; one that names no id says many.
var changedBy = []struct {
	prefix string
	kind   changes.Kind
}{
	{"/api/v1/webhooks", changes.Webhooks},     // create, update, delete, test, rotate, replay, …
	{"/api/v1/deliveries", changes.Deliveries}, // retry
	{"/api/v1/api-keys", changes.APIKeys},      // create, revoke
}

// noteChanges tells the change stream about every successful write to a webhook, a delivery
// or an API key, after the handler ran. Publishing notes its events itself (observePublished):
// their ids are in the body, not the route. Doing it here rather than in each handler keeps
// new write routes under /webhooks/:id in the stream without anyone remembering to.
func (s *Server) noteChanges(c *gin.Context) {
	c.Next()
	if s.cfg.Changes == nil || c.Writer.Status() >= 300 {
		return
	}
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return
	}
	route := c.FullPath()
	for _, r := range changedBy {
		if route != r.prefix && !strings.HasPrefix(route, r.prefix+"/") {
			continue
		}
		id := c.Param("id")
		if id == "" {
			if loc := c.Writer.Header().Get("Location"); strings.HasPrefix(loc, r.prefix+"/") {
				id = path.Base(loc)
			}
		}
		if id == "" {
			s.cfg.Changes.Many(r.kind)
		} else {
			s.cfg.Changes.Note(r.kind, id)
		}
		return
	}
}

// notePublished tells the change stream about newly published events.
func (s *Server) notePublished(res []store.Published) {
	if s.cfg.Changes == nil {
		return
	}
	ids := make([]string, 0, len(res))
	for _, p := range res {
		if !p.Replayed {
			ids = append(ids, p.Event.ID)
		}
	}
	s.cfg.Changes.Note(changes.Events, ids...)
}

// changesSocket streams the admin change stream.
//
//	@Summary		Live stream of changes
//	@Description	WebSocket for admin pages that follow the server. Each message is a ChangeMessage: per kind (webhooks, events, deliveries, api_keys), the ids that changed since the previous message, at most one message per 300 ms however busy the server is. A kind with more than 100 changed ids says "many": true instead (refetch everything of that kind); a kind that did not change is left out. Webhooks change when created, updated, deleted, enabled, disabled (also automatically: 410 Gone, repeated failures), tested, delivered to, or when work is queued for them or they fall behind; events when published or when one of their deliveries changes state (which also names the delivery and its webhook). A message names what changed, never how: read it back through the API. Changes made on any replica reach every replica's sockets. After connecting, and after every reconnect, refetch everything: what changed while no socket was open is not sent. A client that falls behind is disconnected and should reconnect. Browsers authenticate with the session cookie and must come from this server's origin; scripts use a bearer token. The socket closes (1008) when its credential ends (logout, revoked key). The server pings every 20 s.
//	@Tags			changes
//	@Security		BearerAuth
//	@Success		101	{object}	changes.Message	"switching protocols; messages have this shape"
//	@Failure		400	{object}	Problem
//	@Failure		401	{object}	Problem
//	@Failure		403	{object}	Problem
//	@Failure		404	{object}	Problem
//	@Router			/api/v1/changes [get]
func (s *Server) changesSocket(c *gin.Context) {
	if s.cfg.Changes == nil {
		problem(c, http.StatusNotFound, "this server has no change stream")
		return
	}
	cr := RequestCredential(c)
	s.cfg.Changes.Hub().ServeWS(c.Writer, c.Request, changes.Topic, livesocket.Credential{Tags: cr.Tags, Valid: cr.Valid}, socketRefused(c))
}

// socketRefused answers a refused WebSocket handshake as a problem.
func socketRefused(c *gin.Context) func(status int, reason string) {
	return func(status int, reason string) {
		if status == http.StatusForbidden {
			reason = "cross-origin WebSocket refused: open it from this server's own origin"
		}
		problem(c, status, reason)
	}
}
