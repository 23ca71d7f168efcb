package api

import (
	"reflect"
	"testing"
)

// The parsers a stranger with a token reaches. Each must answer any bytes with a value or an
// error, never a panic; `go test` runs the seeds below, `make fuzz` runs each for longer.

var eventSeeds = []string{
	`{"event":"message.received","data":{"conversation_id":1,"message_id":2,"content":"hi"}}`,
	`{"event":"conversation.started","timestamp":"2025-01-15T10:30:00+00:00","data":{"conversation_id":123,"visitor_name":"John Doe"}}`,
	`{"event":"x","data":null}`, `{"data":{"conversation_id":1e999}}`, `[]`, `{"event":1}`, `{"event":"message.received","data":{"conversation_id":-1}}`,
}

func FuzzEventInput(f *testing.F) {
	for _, s := range eventSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := parseInput[EventInput](raw, false)
		if err != nil {
			return
		}
		_, _ = buildPublish(&in)
	})
}

func FuzzBatchInput(f *testing.F) {
	f.Add([]byte(`{"events":[` + eventSeeds[0] + `,` + eventSeeds[1] + `]}`))
	f.Add([]byte(`{"events":[]}`))
	f.Add([]byte(`{"events":[{"event":"message.received","data":{}}],"x":1}`))
	f.Add([]byte(`{"events":[1,"a",null,{}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if items, ok := quickBatch(raw); ok {
			_ = items
			return
		}
		in, err := parseInput[BatchInput](raw, false)
		if err != nil {
			return
		}
		_, _ = buildBatch(in)
	})
}

func FuzzWebhookInput(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","url":"https://example.com/hook","events":["message.received"],"secret":"s3cret-s3cret"}`,
		`{"name":"a","url":"https://user:pass@example.com","events":[],"format":"slack","generate_secret":true}`,
		`{"secret":null,"enabled":false}`, `{"events":"message.received"}`, `{"name":"` + "\xff" + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = parseInput[WebhookInput](raw, true)
	})
}

// The scanner's path must take a body apart exactly as encoding/json did, and refuse what it
// refused with the same words.
func FuzzSplitBodyMatchesEncodingJSON(f *testing.F) {
	for _, s := range append(eventSeeds, `{"a":1,"a":2}`, ` {"a" : [1, {"b":null}] } `, `{"a":1} {}`, `{"a":1}]`, `{"\u0061":1}`,
		`{"é":1}`, `null`, `{"a":"`+"\xff"+`"}`, `{"a":1,}`, "{\"a\":1}\n\t ", `{}`, `{"a":tru}`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, gotErr := splitBody(raw)
		want, wantErr := splitBodyJSON(raw)
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotErr, wantErr) {
			t.Fatalf("%q: split as %q (%v), encoding/json as %q (%v)", raw, got, gotErr, want, wantErr)
		}
	})
}
