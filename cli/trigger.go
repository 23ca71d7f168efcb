package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// eventType is the part of the API's EventType trigger uses.
type eventType struct {
	Name    string          `json:"name"`
	Example json.RawMessage `json:"example"`
}

// trigger publishes the server catalogue's example of an event type, with --data merged in.
func trigger(ctx context.Context, env Env, args []string) int {
	fs := newFlags(env, "trigger", "trigger EVENT [--data '{\"key\":…}'] [--replace]")
	sf := addServerFlags(fs, env)
	data := fs.String("data", "", "JSON object whose keys replace the example's data keys")
	replace := fs.Bool("replace", false, "send --data as the whole data object instead of merging it into the example")
	pos, code, ok := parseWithArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(env.Stderr, "hookrelay trigger: name one event type, e.g. hookrelay trigger conversation.started")
		return exitUsage
	}
	var extra map[string]json.RawMessage
	if *data != "" {
		if err := json.Unmarshal([]byte(*data), &extra); err != nil || extra == nil {
			fmt.Fprintln(env.Stderr, "hookrelay trigger: --data must be a JSON object")
			return exitUsage
		}
	} else if *replace {
		fmt.Fprintln(env.Stderr, "hookrelay trigger: --replace needs --data")
		return exitUsage
	}
	api, ok := sf.client(env)
	if !ok {
		return exitUsage
	}
	var types list[eventType]
	if err := api.do(ctx, http.MethodGet, "/api/v1/event-types", nil, &types); err != nil {
		fmt.Fprintln(env.Stderr, "hookrelay trigger:", err)
		return exitFail
	}
	payload, known := exampleData(types.Data, pos[0])
	if payload == nil {
		fmt.Fprintf(env.Stderr, "hookrelay trigger: unknown event type %q; known: %s\n", pos[0], strings.Join(known, ", "))
		return exitUsage
	}
	if *replace {
		payload = extra
	} else {
		for k, v := range extra {
			payload[k] = v
		}
	}
	var out struct {
		ID         string `json:"id"`
		Event      string `json:"event"`
		Deliveries int    `json:"deliveries"`
	}
	if err := api.do(ctx, http.MethodPost, "/api/v1/events", map[string]any{"event": pos[0], "data": payload}, &out); err != nil {
		fmt.Fprintln(env.Stderr, "hookrelay trigger:", err)
		return exitFail
	}
	fmt.Fprintf(env.Stdout, "%s %s deliveries=%d\n", out.ID, out.Event, out.Deliveries)
	return exitOK
}

// exampleData returns the data object of the named type's example (nil when no type has the
// name) and the known names.
func exampleData(types []eventType, name string) (map[string]json.RawMessage, []string) {
	known := make([]string, 0, len(types))
	for _, et := range types {
		known = append(known, et.Name)
		if et.Name != name {
			continue
		}
		var body struct {
			Data map[string]json.RawMessage `json:"data"`
		}
		if json.Unmarshal(et.Example, &body) == nil && body.Data != nil {
			return body.Data, known
		}
		return map[string]json.RawMessage{}, known
	}
	return nil, known
}
