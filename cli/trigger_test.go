package cli

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/internal/wait"
)

// exampleOf reads the data of an event type's example from the server's catalogue.
func exampleOf(t *testing.T, s interface {
	Do(testing.TB, string, string, any, int, any) []byte
}, name string) map[string]any {
	t.Helper()
	var types api.List[api.EventType]
	s.Do(t, http.MethodGet, "/api/v1/event-types", nil, http.StatusOK, &types)
	for _, et := range types.Data {
		if et.Name == name {
			var body struct {
				Data map[string]any `json:"data"`
			}
			if err := json.Unmarshal(et.Example, &body); err != nil {
				t.Fatal(err)
			}
			return body.Data
		}
	}
	t.Fatalf("no event type %s", name)
	return nil
}

func TestTriggerPublishesTheCatalogueExample(t *testing.T) {
	s := startServer(t)
	b, _ := newLinkedBin(t, s, "trigger")
	cases := []struct {
		name, event string
		args        []string
		want        func(example map[string]any) map[string]any
	}{
		{"example", "conversation.started", nil, func(ex map[string]any) map[string]any { return ex }},
		{"merged", "message.received", []string{"--data", `{"content":"Where is my parcel?","message_id":77}`},
			func(ex map[string]any) map[string]any {
				ex["content"], ex["message_id"] = "Where is my parcel?", float64(77)
				return ex
			}},
		{"replaced", "conversation.started", []string{"--replace", "--data", `{"conversation_id":5}`},
			func(ex map[string]any) map[string]any {
				// The server fills the catalogue's keys: unknown ones null, created_at the event time.
				for k := range ex {
					ex[k] = nil
				}
				ex["conversation_id"] = float64(5)
				return ex
			}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := serverEnv(s.BaseURL)
			// Flags may follow the event name.
			if code := trigger(t.Context(), e.Env, append([]string{c.event}, c.args...)); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, e.errOut)
			}
			fields := strings.Fields(e.out.String())
			if len(fields) != 3 || !strings.HasPrefix(fields[0], "evt_") || fields[1] != c.event || fields[2] != "deliveries=1" {
				t.Fatalf("output %q, want \"evt_… %s deliveries=1\"", e.out, c.event)
			}
			ev := s.Event(t, fields[0])
			var payload struct {
				Event string         `json:"event"`
				Data  map[string]any `json:"data"`
			}
			if err := json.Unmarshal(ev.Payload, &payload); err != nil {
				t.Fatal(err)
			}
			want := c.want(exampleOf(t, s, c.event))
			if c.name == "replaced" {
				want["created_at"] = payload.Data["created_at"]
			}
			if payload.Event != c.event || !reflect.DeepEqual(payload.Data, want) {
				t.Fatalf("published %s %v, want %v", payload.Event, payload.Data, want)
			}
			// The linked bin receives it, as a webhook would.
			wait.Until(t, "the bin receives the event", func() bool { return captureCount(t, s, b.ID) == i+1 })
		})
	}
}

func TestTriggerRefusesBadInvocations(t *testing.T) {
	s := startServer(t)
	cases := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"unknown event", []string{"conversation.ended"}, 2, `unknown event type "conversation.ended"; known: conversation.started, message.received`},
		{"no event", nil, 2, "name one event type"},
		{"data not an object", []string{"conversation.started", "--data", "[1]"}, 2, "--data must be a JSON object"},
		{"replace without data", []string{"conversation.started", "--replace"}, 2, "--replace needs --data"},
		{"invalid data", []string{"conversation.started", "--data", `{"conversation_id":-1}`}, 1, "422"},
		{"help", []string{"-h"}, 0, "-data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := serverEnv(s.BaseURL)
			if code := trigger(t.Context(), e.Env, c.args); code != c.code || !strings.Contains(e.errOut.String(), c.says) {
				t.Fatalf("exit %d (want %d); stderr:\n%s\nwant it to say %q", code, c.code, e.errOut, c.says)
			}
		})
	}
}
