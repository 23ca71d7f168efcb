package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// readmeFieldType is how the README's field tables name a field's type, from the catalogue's
// JSON Schema.
func readmeFieldType(p map[string]any) string {
	switch t := p["type"].(type) {
	case []string:
		return "string or `null`"
	case string:
		switch {
		case t == "integer" && p["minimum"] == 1:
			return "integer ≥ 1"
		case t == "string" && p["minLength"] == 1:
			return "string, not empty"
		case t == "string" && p["format"] == "date-time":
			return "time"
		case t == "boolean":
			return "boolean"
		}
	}
	return "?"
}

// dataKeys returns the keys of a delivered body's data object, in the order they are sent.
func dataKeys(t *testing.T, body []byte) []string {
	t.Helper()
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(env.Data))
	var keys []string
	if _, err := dec.Token(); err != nil { // {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// The README's field tables are the catalogue in code, in the order a receiver gets the keys.
func TestREADMEFieldTablesMatchTheCatalogueAndThePayload(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	for _, et := range models.Catalogue {
		heading := "`" + et.Name + "` (" + strings.ToLower(et.Description[:1]) + et.Description[1:] + "):\n\n| field | type | when publishing | meaning |\n|---|---|---|---|\n"
		i := strings.Index(text, heading)
		if i < 0 {
			t.Errorf("README has no field table for %s (looked for %q)", et.Name, heading)
			continue
		}
		var rows []string
		for _, line := range strings.Split(text[i+len(heading):], "\n") {
			if !strings.HasPrefix(line, "| `") {
				break
			}
			rows = append(rows, line)
		}
		props := et.JSONSchema()["properties"].(map[string]any)
		var want []string
		for _, f := range et.Fields {
			req := "optional"
			if f.Required {
				req = "required"
			}
			want = append(want, "| `"+f.Name+"` | "+readmeFieldType(props[f.Name].(map[string]any))+" | "+req+" | "+f.Description+" |")
		}
		if strings.Join(rows, "\n") != strings.Join(want, "\n") {
			t.Errorf("README table for %s:\n%s\nwant (from the catalogue):\n%s", et.Name, strings.Join(rows, "\n"), strings.Join(want, "\n"))
		}

		// The order is the order of the payload's keys.
		at := time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)
		var names []string
		for _, f := range et.Fields {
			names = append(names, f.Name)
		}
		if got := dataKeys(t, et.Example(at)); strings.Join(got, ",") != strings.Join(names, ",") {
			t.Errorf("%s payload keys %v, table order %v", et.Name, got, names)
		}

		// What the README says of optional fields left out.
		minimal := map[string]any{}
		for _, f := range et.Fields {
			if f.Required {
				minimal[f.Name] = f.Example
			}
		}
		raw, _ := json.Marshal(minimal)
		body, err := et.BuildBody(raw, at)
		if err != nil {
			t.Fatalf("%s with the required fields only: %v", et.Name, err)
		}
		var got struct {
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		for _, f := range et.Fields {
			v := got.Data[f.Name]
			switch {
			case f.Required:
			case f.Name == "is_from_admin":
				if v != false {
					t.Errorf("%s: is_from_admin left out is sent as %v, README says false", et.Name, v)
				}
			case f.Name == "created_at":
				if v != models.FormatTimestamp(at) {
					t.Errorf("%s: created_at left out is sent as %v, README says the event's time", et.Name, v)
				}
			case v != nil:
				t.Errorf("%s: %s left out is sent as %v, README says null", et.Name, f.Name, v)
			}
		}
	}
}
