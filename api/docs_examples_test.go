package api_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/models"
)

// The body "Try it out" prefills for a publish is one of the documented examples: each must be
// the catalogue's sample for its event type, and the server must accept it as it stands.
func TestDocumentedPublishExamplesAreTheCatalogueAndAreAccepted(t *testing.T) {
	doc := loadDocument(t)
	e := newEnv(t, withoutDispatcher())
	publish := doc.Paths.Value("/api/v1/events").Post.RequestBody.Value.Content.Get("application/json")
	if len(publish.Examples) != len(models.Catalogue) {
		t.Fatalf("POST /api/v1/events documents %d examples, want one per event type (%d)", len(publish.Examples), len(models.Catalogue))
	}
	for _, et := range models.Catalogue {
		ex := publish.Examples[et.Name]
		if ex == nil || ex.Value == nil {
			t.Errorf("no example named %s", et.Name)
			continue
		}
		body, _ := json.Marshal(ex.Value.Value)
		var got struct {
			Event string         `json:"event"`
			Data  map[string]any `json:"data"`
		}
		if err := json.Unmarshal(body, &got); err != nil || got.Event != et.Name {
			t.Errorf("example %s: event %q (%v)", et.Name, got.Event, err)
		}
		want := map[string]any{}
		for _, f := range et.Fields {
			want[f.Name] = f.Example
		}
		wantJSON, _ := json.Marshal(want)
		var wantData map[string]any
		_ = json.Unmarshal(wantJSON, &wantData)
		if !reflect.DeepEqual(got.Data, wantData) {
			t.Errorf("example %s data\n got %v\nwant %v (the catalogue's examples)", et.Name, got.Data, wantData)
		}
		if r := e.post("/api/v1/events", string(body)); r.status != http.StatusAccepted {
			t.Errorf("publishing the documented %s example: %s", et.Name, r)
		}
	}
	batch := doc.Paths.Value("/api/v1/events/batch").Post.RequestBody.Value.Content.Get("application/json")
	if len(batch.Examples) == 0 {
		t.Fatal("POST /api/v1/events/batch documents no example")
	}
	for name, ex := range batch.Examples {
		body, _ := json.Marshal(ex.Value.Value)
		if r := e.post("/api/v1/events/batch", string(body)); r.status != http.StatusAccepted {
			t.Errorf("publishing the documented batch example %s: %s", name, r)
		}
	}
}

// Each problem response shows an example that fits its status, not one body for all.
func TestProblemExamplesFitTheirStatus(t *testing.T) {
	doc := loadDocument(t)
	details := map[string]map[string]bool{} // status → details seen
	check := func(where, code string, ex any) {
		m, ok := ex.(map[string]any)
		if !ok {
			t.Errorf("%s %s: no problem example", where, code)
			return
		}
		if status, _ := m["status"].(float64); code != "default" && strings.TrimSpace(code) != jsonNumber(status) {
			t.Errorf("%s %s: example status %v", where, code, m["status"])
		}
		if details[code] == nil {
			details[code] = map[string]bool{}
		}
		details[code][m["detail"].(string)] = true
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for code, r := range op.Responses.Map() {
				if code < "400" || code == "default" || r.Value == nil {
					continue
				}
				check(method+" "+path, code, r.Value.Content.Get("application/problem+json").Example)
			}
		}
	}
	for name, r := range doc.Components.Responses {
		for code, sr := range map[string]string{"401": "Unauthorized", "403": "Forbidden", "413": "TooLarge", "415": "UnsupportedMediaType", "429": "TooManyFailedSignIns", "500": "InternalError"} {
			if sr == name {
				check("components "+name, code, r.Value.Content.Get("application/problem+json").Example)
			}
		}
	}
	seen := map[string]string{}
	for code, ds := range details {
		for d := range ds {
			if other, dup := seen[d]; dup && other != code {
				t.Errorf("statuses %s and %s share the example detail %q", other, code, d)
			}
			seen[d] = code
		}
	}
	if !details["409"]["the webhook is disabled: enable it before redelivering"] || !details["422"]["data.conversation_id: must be a positive integer"] {
		t.Errorf("operation-specific examples missing: 409 %v, 422 %v", details["409"], details["422"])
	}
}

func jsonNumber(f float64) string { b, _ := json.Marshal(f); return string(b) }

// The document's introduction describes the product in its own words.
func TestDocumentIntroductionStatesTheContract(t *testing.T) {
	doc := loadDocument(t)
	intro := doc.Info.Description
	for _, want := range []string{"X-Webhook-Signature", "HMAC-SHA256", "`event`, `timestamp` and `data`", "Try it out", "GET /api/v1/settings"} {
		if !strings.Contains(intro, want) {
			t.Errorf("introduction lacks %q", want)
		}
	}
	if strings.Contains(strings.ToLower(intro), "seed") {
		t.Errorf("introduction mentions a seed:\n%s", intro)
	}
	if tags := doc.Tags; len(tags) == 0 || tags[len(tags)-1].Name != "receiver" {
		t.Errorf("the receiver tag is not listed last: %v", tags)
	}
	for _, path := range []string{"/inspect/{id}", "/inspect/{id}/{path}"} {
		for method, op := range doc.Paths.Value(path).Operations() {
			if len(op.Tags) != 1 || op.Tags[0] != "receiver" {
				t.Errorf("%s %s: tags %v, want [receiver]", method, path, op.Tags)
			}
		}
	}
}
