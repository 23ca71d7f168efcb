package delivery

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hookrelay/hookrelay/models"
)

// BodyFor returns the bytes a webhook of the given format receives for an event body. The
// json format is the documented body itself; Slack and Discord incoming webhooks reject it, so they
// get a one-line summary in the field they read.
func BodyFor(format string, eventBody []byte) []byte {
	switch format {
	case models.FormatSlack:
		b, _ := json.Marshal(map[string]string{"text": Summary(eventBody)})
		return b
	case models.FormatDiscord:
		b, _ := json.Marshal(map[string]string{"content": Summary(eventBody)})
		return b
	}
	return eventBody
}

// Summary is a human one-liner of an event body.
func Summary(eventBody []byte) string {
	var env struct {
		Event string `json:"event"`
		Data  struct {
			ConversationID int64   `json:"conversation_id"`
			VisitorName    *string `json:"visitor_name"`
			VisitorEmail   *string `json:"visitor_email"`
			CurrentURL     *string `json:"current_url"`
			Content        string  `json:"content"`
			IsFromAdmin    bool    `json:"is_from_admin"`
			AdminName      *string `json:"admin_name"`
		} `json:"data"`
	}
	if json.Unmarshal(eventBody, &env) != nil {
		return "Hookrelay event"
	}
	d := env.Data
	who := "a visitor"
	if d.VisitorName != nil && *d.VisitorName != "" {
		who = *d.VisitorName
	}
	if d.VisitorEmail != nil && *d.VisitorEmail != "" {
		who += " (" + *d.VisitorEmail + ")"
	}
	switch env.Event {
	case models.EventConversationStarted:
		s := fmt.Sprintf("New conversation #%d from %s", d.ConversationID, who)
		if d.CurrentURL != nil && *d.CurrentURL != "" {
			s += " on " + *d.CurrentURL
		}
		return s
	case models.EventMessageReceived:
		if d.IsFromAdmin && d.AdminName != nil {
			who = *d.AdminName
		}
		content := strings.Join(strings.Fields(d.Content), " ")
		if r := []rune(content); len(r) > 200 {
			content = string(r[:200]) + "…"
		}
		return fmt.Sprintf("New message in conversation #%d from %s: %s", d.ConversationID, who, content)
	}
	return "Hookrelay event " + env.Event
}
