package models

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(TimestampLayout, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// The two sample payloads of the README, compacted: keys in exactly this order, every key present.
const (
	documentedConversationStarted = `{"event":"conversation.started","timestamp":"2025-01-15T10:30:00+00:00","data":{"conversation_id":123,"visitor_name":"John Doe","visitor_email":"john@example.com","visitor_phone":"+1234567890","visitor_ip":"192.168.1.100","current_url":"https://example.com/products","status":"open","created_at":"2025-01-15T10:30:00+00:00"}}`
	documentedMessageReceived     = `{"event":"message.received","timestamp":"2025-01-15T10:31:00+00:00","data":{"message_id":456,"content":"Hello, I need help with my order.","is_from_admin":false,"admin_name":null,"conversation_id":123,"visitor_name":"John Doe","visitor_email":"john@example.com","visitor_phone":"+1234567890","visitor_ip":"192.168.1.100","current_url":"https://example.com/products","status":"open","created_at":"2025-01-15T10:31:00+00:00"}}`
)

func TestExampleBodiesMatchTheDocumentedBodiesByteForByte(t *testing.T) {
	cs, _ := LookupEventType(EventConversationStarted)
	if got := string(cs.Example(parseTime(t, "2025-01-15T10:30:00+00:00"))); got != documentedConversationStarted {
		t.Errorf("conversation.started\n got %s\nwant %s", got, documentedConversationStarted)
	}
	mr, _ := LookupEventType(EventMessageReceived)
	if got := string(mr.Example(parseTime(t, "2025-01-15T10:31:00+00:00"))); got != documentedMessageReceived {
		t.Errorf("message.received\n got %s\nwant %s", got, documentedMessageReceived)
	}
}

func TestBuildBodyFillsNullsAndDefaultsInTheDocumentedOrder(t *testing.T) {
	mr, _ := LookupEventType(EventMessageReceived)
	// Given out of order, with a Z time and an offset time: normalised to +00:00 and the documented order.
	body, err := mr.BuildBody(json.RawMessage(`{"content":"hi <b>&</b>","conversation_id":7,"message_id":9,"created_at":"2025-01-15T12:31:00+02:00"}`),
		parseTime(t, "2025-01-15T10:31:05+00:00"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event":"message.received","timestamp":"2025-01-15T10:31:05+00:00","data":{"message_id":9,"content":"hi <b>&</b>","is_from_admin":false,"admin_name":null,"conversation_id":7,"visitor_name":null,"visitor_email":null,"visitor_phone":null,"visitor_ip":null,"current_url":null,"status":null,"created_at":"2025-01-15T10:31:00+00:00"}}`
	if string(body) != want {
		t.Errorf("\n got %s\nwant %s", body, want)
	}
}

func TestBuildBodyNamesEveryBadField(t *testing.T) {
	mr, _ := LookupEventType(EventMessageReceived)
	cases := []struct {
		data  string
		field string
	}{
		{`{"conversation_id":0,"message_id":1,"content":"x"}`, "data.conversation_id"},
		{`{"conversation_id":1.5,"message_id":1,"content":"x"}`, "data.conversation_id"},
		{`{"conversation_id":"1","message_id":1,"content":"x"}`, "data.conversation_id"},
		{`{"conversation_id":1,"content":"x"}`, "data.message_id"},
		{`{"conversation_id":1,"message_id":1,"content":""}`, "data.content"},
		{`{"conversation_id":1,"message_id":1,"content":"x","is_from_admin":"yes"}`, "data.is_from_admin"},
		{`{"conversation_id":1,"message_id":1,"content":"x","visitor_name":5}`, "data.visitor_name"},
		{`{"conversation_id":1,"message_id":1,"content":"x","created_at":"yesterday"}`, "data.created_at"},
		{`{"conversation_id":1,"message_id":1,"content":"x","extra":1}`, "data.extra"},
		{`[1,2]`, "data"},
		{`null`, "data"},
	}
	for _, tc := range cases {
		t.Run(tc.data, func(t *testing.T) {
			_, err := mr.BuildBody(json.RawMessage(tc.data), time.Now())
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("%s: want a validation error, got %v", tc.data, err)
			}
			found := false
			for _, e := range verr.Errors {
				found = found || e.Field == tc.field
			}
			if !found {
				t.Errorf("%s: errors %v do not name %s", tc.data, verr.Errors, tc.field)
			}
		})
	}
}

func TestCheckDeliveredAcceptsTheDocumentedBodiesAndListsProblems(t *testing.T) {
	for _, body := range []string{documentedConversationStarted, documentedMessageReceived} {
		if _, known, problems := CheckDelivered([]byte(body)); !known || len(problems) != 0 {
			t.Errorf("documented body: known=%v problems=%v", known, problems)
		}
	}
	_, known, problems := CheckDelivered([]byte(`{"event":"conversation.started","timestamp":"2025-01-15T10:30:00Z","data":{"conversation_id":123}}`))
	if !known {
		t.Fatal("known event reported unknown")
	}
	joined := strings.Join(problems, "\n")
	for _, want := range []string{"timestamp:", "data.visitor_name: missing", "data.created_at: missing", "data.status: missing"} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems %q lack %q", joined, want)
		}
	}
	if _, known, _ := CheckDelivered([]byte(`{"event":"nope"}`)); known {
		t.Error("unknown event reported known")
	}
}

func TestNewIDHasNoDotAndSortsByTime(t *testing.T) {
	a := NewID("evt")
	time.Sleep(2 * time.Millisecond)
	b := NewID("evt")
	if strings.Contains(a, ".") || !strings.HasPrefix(a, "evt_") {
		t.Errorf("bad id %q", a)
	}
	if !(a < b) {
		t.Errorf("ids not time ordered: %s !< %s", a, b)
	}
}
