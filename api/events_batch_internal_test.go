package api

import (
	"reflect"
	"strings"
	"testing"
)

// The one-pass batch decoder must accept only what the general path accepts, and build the
// same events from it; everything else it declines, leaving the answer to that path. It may
// decline an odd valid body too (a repeated key), which then merely takes the longer way.
func TestQuickBatchAgreesWithTheGeneralPath(t *testing.T) {
	item := func(data string) string {
		return `{"event":"message.received","timestamp":"2025-01-15T10:30:00+00:00","data":` + data + `}`
	}
	msg := `{"message_id":1,"conversation_id":2,"content":"hi","visitor_name":"Ann","is_from_admin":true}`
	many := strings.TrimSuffix(strings.Repeat(item(msg)+",", MaxBatchEvents+1), ",")
	bodies := map[string]string{
		"one":                  `{"events":[` + item(msg) + `]}`,
		"two types":            `{"events":[` + item(msg) + `,{"event":"conversation.started","timestamp":"2025-01-15T10:30:00Z","data":{"conversation_id":7,"visitor_name":"Bo"}}]}`,
		"spaces and escapes":   " \n{ \"events\" : [ " + item(`{"message_id":1,"conversation_id":2,"content":"a\"b\u00e9\n","visitor_name":null,"created_at":"2025-01-15T11:30:00+01:00"}`) + " ] } \n",
		"duplicate key":        `{"events":"x","events":[` + item(msg) + `]}`,
		"null events":          `{"events":null}`,
		"no events":            `{}`,
		"empty events":         `{"events":[]}`,
		"too many":             `{"events":[` + many + `]}`,
		"null item":            `{"events":[null]}`,
		"string item":          `{"events":["x"]}`,
		"unknown top key":      `{"events":[` + item(msg) + `],"extra":1}`,
		"top key in caps":      `{"Events":[` + item(msg) + `]}`,
		"item key in caps":     `{"events":[{"Event":"message.received","data":` + msg + `}]}`,
		"unknown item key":     `{"events":[{"event":"message.received","data":` + msg + `,"id":1}]}`,
		"bad data":             `{"events":[` + item(`{"message_id":"1"}`) + `]}`,
		"unknown event":        `{"events":[{"event":"nope","data":{}}]}`,
		"bad timestamp":        `{"events":[{"event":"message.received","timestamp":"yesterday","data":` + msg + `}]}`,
		"trailing data":        `{"events":[` + item(msg) + `]} {}`,
		"not an object":        `[` + item(msg) + `]`,
		"events not an array":  `{"events":{"event":"message.received"}}`,
		"truncated":            `{"events":[` + item(msg),
		"item data not object": `{"events":[` + item(`[1]`) + `]}`,
	}
	accepted := 0
	for name, body := range bodies {
		quick, ok := quickBatch([]byte(body))
		general, err := generalBatch([]byte(body))
		switch {
		case ok && err != nil:
			t.Errorf("%s: the quick path accepts what the general path refuses: %v", name, err)
		case !ok && err == nil && name != "duplicate key":
			t.Errorf("%s: the quick path declines a plain valid body", name)
		case ok && !reflect.DeepEqual(quick, general):
			t.Errorf("%s: the paths built different events:\n%+v\n%+v", name, quick, general)
		case ok:
			accepted++
		}
	}
	if accepted != 3 {
		t.Errorf("the quick path accepted %d of the bodies, want the 3 plain valid ones", accepted)
	}
}

// generalBatch is what publishEventBatch does when quickBatch declines, minus the answers.
func generalBatch(raw []byte) (any, error) {
	batch, err := parseInput[BatchInput](raw, false)
	if err != nil {
		return nil, err
	}
	return buildBatch(batch)
}

// BenchmarkQuickBatch decodes and validates a well-formed batch of 100 message.received
// events, the publisher's common case.
func BenchmarkQuickBatch(b *testing.B) {
	item := `{"event":"message.received","timestamp":"2025-01-15T10:30:00+00:00","data":` +
		`{"message_id":456,"conversation_id":123,"content":"Hello, I need help with my order.","visitor_name":"John Doe",` +
		`"visitor_email":"john@example.com","current_url":"https://example.com/products","created_at":"2025-01-15T10:31:00Z"}}`
	body := []byte(`{"events":[` + strings.TrimSuffix(strings.Repeat(item+",", 100), ",") + `]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, ok := quickBatch(body); !ok {
			b.Fatal("the quick path declined a valid batch")
		}
	}
}
