package api

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/hookrelay/hookrelay/openapi"
)

// The document's problem examples carry the type and title problem() sends for their status
// (internal/openapigen keeps its own copy of the table).
func TestDocumentedProblemExamplesUseTheServersTitles(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Ref string `json:"$ref"` // a shared response, checked under components
				// Other media types' examples are not problems (a page, a file).
				Content map[string]struct {
					Example json.RawMessage `json:"example"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
		Components struct {
			Responses map[string]struct {
				Content map[string]struct {
					Example *Problem `json:"example"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openapi.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	check := func(where string, p *Problem) {
		if p == nil {
			return
		}
		n++
		want := problemTitles[p.Status]
		if p.Type != "urn:hookrelay:problem:"+want.slug || p.Title != want.title {
			t.Errorf("%s: example type %q title %q; problem() sends %q %q for %d", where, p.Type, p.Title,
				"urn:hookrelay:problem:"+want.slug, want.title, p.Status)
		}
	}
	for path, item := range doc.Paths {
		for method, op := range item {
			for code, r := range op.Responses {
				raw := r.Content["application/problem+json"].Example
				var p *Problem
				if raw != nil {
					if err := json.Unmarshal(raw, &p); err != nil {
						t.Errorf("%s %s %s: example is not a problem: %v", method, path, code, err)
					}
				}
				check(method+" "+path+" "+code, p)
				if c, err := strconv.Atoi(code); err == nil && c >= 400 && r.Ref == "" && p == nil {
					t.Errorf("%s %s %s: no example", method, path, code)
				}
			}
		}
	}
	for name, r := range doc.Components.Responses {
		check(name, r.Content["application/problem+json"].Example)
	}
	if n < 50 {
		t.Errorf("only %d problem examples found", n)
	}
}
