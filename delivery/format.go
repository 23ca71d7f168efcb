package delivery

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hookrelay/hookrelay/models"
)

// BodyFor returns the bytes a webhook of the given format receives for an event body. The
// json format is the documented body itself; Slack and Discord incoming webhooks reject it, so
// they get a one-line summary in the field they read. Names, addresses, URLs and message text
// in a summary come from website visitors: each is escaped by the platform's rules, so a
// visitor cannot ping a channel, plant a disguised link or format the message.
func BodyFor(format string, eventBody []byte) []byte {
	switch format {
	case models.FormatSlack:
		b, _ := json.Marshal(slackMessage{Text: summary(eventBody, slackEscape)})
		return b
	case models.FormatDiscord:
		b, _ := json.Marshal(discordMessage{Content: summary(eventBody, discordEscape),
			AllowedMentions: discordMentions{Parse: []string{}}})
		return b
	}
	return eventBody
}

type slackMessage struct {
	Text string `json:"text"`
}

// discordMessage carries allowed_mentions with nothing to parse, so even a mention that
// escaping missed pings nobody.
type discordMessage struct {
	Content         string          `json:"content"`
	AllowedMentions discordMentions `json:"allowed_mentions"`
}

type discordMentions struct {
	Parse []string `json:"parse"`
}

// slackEscape applies Slack's three escapes for message text: with '<' and '>' escaped,
// "<!channel>", "<@U123>" and "<https://x|label>" are shown as typed instead of acting.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// discordEscaper backslash-escapes Discord's inline markdown (bold, italics, strike, code,
// spoilers, masked links, quotes and angle-bracket mentions) and breaks @everyone and @here
// with a zero-width space, so the text shows as typed.
var discordEscaper = strings.NewReplacer(
	`\`, `\\`, "*", `\*`, "_", `\_`, "~", `\~`, "`", "\\`", "|", `\|`,
	"[", `\[`, "]", `\]`, "(", `\(`, ")", `\)`, "<", `\<`, ">", `\>`, "#", `\#`,
	"@everyone", "@\u200beveryone", "@here", "@\u200bhere",
)

func discordEscape(s string) string { return discordEscaper.Replace(s) }

// oneLine collapses every run of whitespace, newlines included, to one space: a summary is a
// single line, and a field cannot start a line of its own (where headings, lists and quotes
// would apply).
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// summary is a human one-liner of an event body; esc escapes every visitor-supplied part.
func summary(eventBody []byte, esc func(string) string) string {
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
	field := func(p *string) string {
		if p == nil {
			return ""
		}
		return esc(oneLine(*p))
	}
	d := env.Data
	who := "a visitor"
	if name := field(d.VisitorName); name != "" {
		who = name
	}
	if email := field(d.VisitorEmail); email != "" {
		who += " (" + email + ")"
	}
	switch env.Event {
	case models.EventConversationStarted:
		s := fmt.Sprintf("New conversation #%d from %s", d.ConversationID, who)
		if u := field(d.CurrentURL); u != "" {
			s += " on " + u
		}
		return s
	case models.EventMessageReceived:
		if d.IsFromAdmin && d.AdminName != nil {
			who = field(d.AdminName)
		}
		content := oneLine(d.Content)
		if r := []rune(content); len(r) > 200 {
			content = string(r[:200]) + "…"
		}
		return fmt.Sprintf("New message in conversation #%d from %s: %s", d.ConversationID, who, esc(content))
	}
	return "Hookrelay event " + esc(oneLine(env.Event))
}
