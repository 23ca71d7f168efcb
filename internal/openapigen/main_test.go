package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

var (
	genOnce sync.Once
	genDir  string
	genErr  error
)

// generated runs the generator once into a temporary directory (without the UI types, which
// need Node; `make openapi-check` compares those) and returns that directory.
func generated(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	genOnce.Do(func() {
		genDir, genErr = os.MkdirTemp("", "openapigen-test-")
		if genErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		genErr = run(ctx, root, genDir, "-", false)
	})
	if genErr != nil {
		t.Fatalf("generate: %v", genErr)
	}
	return genDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if genDir != "" {
		_ = os.RemoveAll(genDir)
	}
	os.Exit(code)
}

func TestCommittedDocumentsMatchTheCode(t *testing.T) {
	dir := generated(t)
	for _, name := range []string{"swagger.json", "openapi.json"} {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		have, err := os.ReadFile(filepath.Join("..", "..", "openapi", name))
		if err != nil {
			t.Fatalf("read committed openapi/%s: %v", name, err)
		}
		if !bytes.Equal(have, want) {
			t.Errorf("openapi/%s is stale against the annotations: run `make openapi` and commit the result\n%s", name, firstDifference(have, want))
		}
	}
}

func TestGenerationIsDeterministic(t *testing.T) {
	first := generated(t)
	second := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	if err := run(ctx, root, second, "-", false); err != nil {
		t.Fatalf("generate again: %v", err)
	}
	for _, name := range []string{"swagger.json", "openapi.json"} {
		a, _ := os.ReadFile(filepath.Join(first, name))
		b, _ := os.ReadFile(filepath.Join(second, name))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two runs on the same source (%d and %d bytes)", name, len(a), len(b))
		}
	}
}

func loadGenerated(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile(filepath.Join(generated(t), "openapi.json"))
	if err != nil {
		t.Fatalf("load generated document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("generated document is invalid: %v", err)
	}
	return doc
}

func schema(t *testing.T, doc *openapi3.T, name string) *openapi3.Schema {
	t.Helper()
	s := doc.Components.Schemas[name]
	if s == nil || s.Value == nil {
		t.Fatalf("no schema %q in the document", name)
	}
	return s.Value
}

func TestResponseSchemasFollowEncodingJSON(t *testing.T) {
	doc := loadGenerated(t)
	wh := schema(t, doc, "Webhook")
	// Without omitempty a field is always written; a pointer without omitempty may be null.
	for _, name := range []string{"id", "name", "disabled_reason", "last_delivery", "created_at"} {
		if !slices.Contains(wh.Required, name) {
			t.Errorf("Webhook.%s is always present but not required (required: %v)", name, wh.Required)
		}
	}
	if slices.Contains(wh.Required, "secret") {
		t.Error("Webhook.secret has omitempty yet is required")
	}
	if p := wh.Properties["disabled_reason"].Value; !p.Nullable {
		t.Error("Webhook.disabled_reason is a *string yet not nullable")
	}
	if p := wh.Properties["name"].Value; p.Nullable {
		t.Error("Webhook.name is a string yet nullable")
	}
	last := wh.Properties["last_delivery"].Value
	if !last.Nullable || len(last.AllOf) != 1 || !last.Type.Is("object") {
		t.Errorf("Webhook.last_delivery (*LastDelivery) must be a nullable object wrapping its $ref, got nullable=%v allOf=%d type=%v",
			last.Nullable, len(last.AllOf), last.Type)
	}
	// The same with a doc comment on the field, which swag turns into its own allOf wrapper.
	backlog := wh.Properties["backlog"].Value
	if !backlog.Nullable || len(backlog.AllOf) != 1 || !backlog.Type.Is("object") || backlog.Description == "" {
		t.Errorf("Webhook.backlog (*WebhookBacklog, documented) must be a nullable object wrapping its $ref, got nullable=%v allOf=%d type=%v",
			backlog.Nullable, len(backlog.AllOf), backlog.Type)
	}
	if f := wh.Properties["created_at"].Value.Format; f != "date-time" {
		t.Errorf("Webhook.created_at (time.Time) has format %q, want date-time", f)
	}
}

func TestRequestSchemasAreClosedAndKeepTheirTags(t *testing.T) {
	doc := loadGenerated(t)
	in := schema(t, doc, "WebhookInput")
	if in.AdditionalProperties.Has == nil || *in.AdditionalProperties.Has {
		t.Error("WebhookInput accepts unknown fields, but readInput answers them with 422")
	}
	if len(in.Required) != 0 {
		t.Errorf("WebhookInput serves PATCH too, so nothing is required, got %v", in.Required)
	}
	if !in.Properties["secret"].Value.Nullable {
		t.Error(`WebhookInput.secret is tagged x-nullable ({"secret": null} removes the secret) but is not nullable`)
	}
	// Fields that are api.Optional[T] read as T, with their tags.
	if p := in.Properties["name"].Value; !p.Type.Is("string") || p.Example != "Slack Notifications" {
		t.Errorf("WebhookInput.name is %v with example %v, want a string with its example", p.Type, p.Example)
	}
	if p := in.Properties["events"].Value; !p.Type.Is("array") || p.Items == nil || !p.Items.Value.Type.Is("string") {
		t.Errorf("WebhookInput.events is %v, want an array of strings", p.Type)
	}
	status := schema(t, doc, "BinResponseInput").Properties["status"].Value
	if !status.Type.Is("integer") || status.Min == nil || *status.Min != 200 || status.Max == nil || *status.Max != 599 {
		t.Errorf("BinResponseInput.status is %v from %v to %v, want an integer from 200 to 599", status.Type, status.Min, status.Max)
	}
	batch := schema(t, doc, "BatchInput").Properties["events"].Value
	if !batch.Type.Is("array") || batch.Items == nil || batch.Items.Ref != "#/components/schemas/EventInput" {
		t.Errorf("BatchInput.events is %v, want an array of EventInput", batch.Type)
	}
}

func TestOptionalFieldsAreDocumentedAsTheirType(t *testing.T) {
	dir := t.TempDir()
	src := `package demo

type Part struct{}

type Input struct {
	Name  Optional[string]   ` + "`json:\"name\"`" + `
	Tags  Optional[[]string] ` + "`json:\"tags\"`" + `
	Part  Optional[Part]     ` + "`json:\"part\"`" + `
	Parts Optional[[]Part]   ` + "`json:\"parts\"`" + `
	Items []Optional[Part]   ` + "`json:\"items\"`" + `
	At    Optional[time.Time] ` + "`json:\"at\"`" + `
	Plain string             ` + "`json:\"plain\"`" + `
}
`
	writeDemo(t, dir, src)
	got, err := optionalOverrides(dir, []string{"demo"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"demo.Optional[string]":      "string",
		"demo.Optional[[]string]":    "[]string",
		"demo.Optional[Part]":        "demo.Part",
		"demo.Optional[demo.Part]":   "demo.Part",
		"demo.Optional[[]Part]":      "[]demo.Part",
		"demo.Optional[[]demo.Part]": "[]demo.Part",
		"demo.Optional[time.Time]":   "time.Time",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("overrides %v, want %v", got, want)
	}

	writeDemo(t, dir, strings.Replace(src, "Optional[string]", "Optional[map[string]int]", 1))
	if _, err := optionalOverrides(dir, []string{"demo"}); err == nil || !strings.Contains(err.Error(), "map[string]int") {
		t.Errorf("an optional map: err = %v, want one naming the type", err)
	}
}

func TestOperationsCarryHandlerNamesAndSharedErrors(t *testing.T) {
	doc := loadGenerated(t)
	ids := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" || ids[op.OperationID] {
				t.Errorf("%s: operationId %q is empty or repeated", where, op.OperationID)
			}
			ids[op.OperationID] = true
			authed := op.Security != nil && len(*op.Security) > 0
			if authed {
				if op.Responses.Value("401") == nil {
					t.Errorf("%s needs a token but documents no 401", where)
				}
				if op.Responses.Value("429") == nil {
					t.Errorf("%s checks a token but documents no 429 (failed sign-ins)", where)
				}
				if method != "GET" && op.Responses.Value("403") == nil {
					t.Errorf("%s changes state with a cookie session but documents no 403", where)
				}
				names := map[string]bool{}
				for _, req := range *op.Security {
					for name := range req {
						names[name] = true
					}
				}
				if !names["BearerAuth"] || !names["SessionCookie"] {
					t.Errorf("%s: security %v, want the bearer token or the session cookie", where, names)
				}
			}
			if op.RequestBody != nil {
				// readInput answers 422 for a field it refuses, an unknown one included.
				for _, code := range []string{"400", "413", "415", "422"} {
					if op.Responses.Value(code) == nil {
						t.Errorf("%s reads a JSON body but documents no %s", where, code)
					}
				}
			}
			if op.Responses.Value("500") == nil {
				t.Errorf("%s documents no 500", where)
			}
			// An id in the path names something that may not exist.
			if strings.Contains(path, "{id}") && op.Responses.Value("404") == nil {
				t.Errorf("%s reads an id from its path but documents no 404", where)
			}
		}
	}
	// Operation ids are the handlers' Go names.
	for _, id := range []string{"listWebhooks", "createWebhook", "publishEvent", "healthz", "openapiJSON"} {
		if !ids[id] {
			t.Errorf("no operation %q", id)
		}
	}
	if s := doc.Components.SecuritySchemes["BearerAuth"].Value; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("BearerAuth is %s/%s, want HTTP bearer", s.Type, s.Scheme)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		t.Errorf("committed document must name the relative server \"/\", got %v", doc.Servers)
	}
}

func TestPublicSchemaNames(t *testing.T) {
	cases := map[string]string{
		"Webhook":                "Webhook",
		"api.Secret":             "Secret",
		"models.FieldError":      "FieldError",
		"api.List-Event":         "EventList",
		"api.List-api_EventType": "EventTypeList",
		"github_com_hookrelay_hookrelay_api.Event": "Event",
	}
	for in, want := range cases {
		if got := publicName(in); got != want {
			t.Errorf("publicName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTwoTypesThatWouldShareANameAreRefused(t *testing.T) {
	_, err := schemaNames(map[string]any{"api.Event": map[string]any{}, "models.Event": map[string]any{}})
	if err == nil || !strings.Contains(err.Error(), "@name") {
		t.Errorf("err = %v, want a refusal that suggests // @name", err)
	}
}

func TestStructIndexFollowsJSONRules(t *testing.T) {
	dir := t.TempDir()
	src := `package demo

import "time"

type Base struct {
	ID string ` + "`json:\"id\"`" + `
}

type Thing struct {
	Base
	Name    string     ` + "`json:\"name\"`" + `
	Note    *string    ` + "`json:\"note\"`" + `
	Gone    *string    ` + "`json:\"gone,omitempty\"`" + `
	At      time.Time  ` + "`json:\"at\"`" + `
	Skipped string     ` + "`json:\"-\"`" + `
	hidden  string
} // @name Gizmo
`
	writeDemo(t, dir, src)
	idx, err := indexStructs(dir, []string{"demo"})
	if err != nil {
		t.Fatal(err)
	}
	st := idx.lookup("Gizmo")
	if st == nil || idx.lookup("demo.Thing") != st {
		t.Fatal("Thing is found neither by its @name alias nor by demo.Thing")
	}
	check := func(name string, want goField, wantOK bool) {
		t.Helper()
		got, ok := idx.field(st, name)
		if ok != wantOK || got != want {
			t.Errorf("field %q = %+v, %v; want %+v, %v", name, got, ok, want, wantOK)
		}
	}
	check("id", goField{}, true) // promoted from the embedded Base
	check("name", goField{}, true)
	check("note", goField{pointer: true}, true)
	check("gone", goField{pointer: true, omitEmpty: true}, true)
	check("at", goField{time: true}, true)
	check("Skipped", goField{}, false)
	check("hidden", goField{}, false)
}

// writeDemo writes src as the only file of package demo under dir.
func writeDemo(t *testing.T, dir, src string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "demo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "demo", "demo.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// firstDifference shows the first line where the committed file and the generated one differ.
func firstDifference(have, want []byte) string {
	h, w := strings.Split(string(have), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(h) || i < len(w); i++ {
		var a, b string
		if i < len(h) {
			a = h[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n  committed: %s\n  generated: %s", i+1, a, b)
		}
	}
	return "(no line differs)"
}
