package delivery

import (
	"encoding/json"
	"strings"
	"testing"
)

// hostileBody is a message from a visitor whose every free-text field tries to act on the
// channel it is summarised into: a channel ping and a disguised link (Slack), masked links,
// markdown, @everyone and a user mention (Discord), and a newline that would start a heading.
const hostileBody = `{"event":"message.received","timestamp":"2025-01-15T10:31:00+00:00","data":{` +
	`"message_id":1,"content":"click [Reset password](https://evil.example) **now** @here <@123456>",` +
	`"is_from_admin":false,"admin_name":null,"conversation_id":7,` +
	`"visitor_name":"<!channel> <https://evil.example|Reset password> @everyone\n# Urgent",` +
	`"visitor_email":"a&b@example.com","visitor_phone":null,"visitor_ip":null,"current_url":null,` +
	`"status":"open","created_at":"2025-01-15T10:31:00+00:00"}}`

func TestSlackSummaryEscapesWhatAVisitorTypes(t *testing.T) {
	var msg map[string]string
	if err := json.Unmarshal(BodyFor("slack", []byte(hostileBody)), &msg); err != nil {
		t.Fatal(err)
	}
	text := msg["text"]
	for _, active := range []string{"<!channel>", "<https://evil.example|", "<@123456>", "\n"} {
		if strings.Contains(text, active) {
			t.Errorf("text %q carries %q, which Slack would act on", text, active)
		}
	}
	for _, shown := range []string{"&lt;!channel&gt;", "&lt;https://evil.example|Reset password&gt;", "a&amp;b@example.com",
		"&lt;@123456&gt;", "# Urgent"} {
		if !strings.Contains(text, shown) {
			t.Errorf("text %q lacks %q: the visitor's words must still show, escaped", text, shown)
		}
	}
}

func TestDiscordSummaryEscapesWhatAVisitorTypesAndPingsNobody(t *testing.T) {
	var msg struct {
		Content         string `json:"content"`
		AllowedMentions *struct {
			Parse []string `json:"parse"`
		} `json:"allowed_mentions"`
	}
	raw := BodyFor("discord", []byte(hostileBody))
	if err := json.Unmarshal(raw, &msg); err != nil {
		t.Fatal(err)
	}
	if msg.AllowedMentions == nil || msg.AllowedMentions.Parse == nil || len(msg.AllowedMentions.Parse) != 0 {
		t.Errorf("body %s: want allowed_mentions {\"parse\": []}", raw)
	}
	c := msg.Content
	for _, active := range []string{"[Reset password](https://evil.example)", "**now**", "@everyone", "@here", "<@123456>", "\n"} {
		if strings.Contains(c, active) {
			t.Errorf("content %q carries %q, which Discord would act on", c, active)
		}
	}
	for _, shown := range []string{`\[Reset password\]\(https://evil.example\)`, `\*\*now\*\*`, `\<@123456\>`, `\# Urgent`} {
		if !strings.Contains(c, shown) {
			t.Errorf("content %q lacks %q", c, shown)
		}
	}
}

func TestSummariesStayReadableForOrdinaryText(t *testing.T) {
	body := `{"event":"conversation.started","data":{"conversation_id":123,"visitor_name":"John Doe",` +
		`"visitor_email":"john@example.com","current_url":"https://example.com/products"}}`
	want := "New conversation #123 from John Doe (john@example.com) on https://example.com/products"
	for format, field := range map[string]string{"slack": "text", "discord": "content"} {
		var msg map[string]any
		if err := json.Unmarshal(BodyFor(format, []byte(body)), &msg); err != nil {
			t.Fatal(err)
		}
		if msg[field] != want {
			t.Errorf("%s %s = %q, want %q", format, field, msg[field], want)
		}
	}
}
