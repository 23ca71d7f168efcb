package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/hookrelay/hookrelay/models"
)

func TestEverySchemaAndBodyHasAnExample(t *testing.T) {
	doc := loadGenerated(t)
	for name, s := range doc.Components.Schemas {
		if s.Value == nil || s.Value.Example == nil {
			t.Errorf("schema %s has no example", name)
		}
	}
	has := func(mt *openapi3.MediaType) bool {
		return mt.Example != nil || len(mt.Examples) > 0 || (mt.Schema != nil && mt.Schema.Value != nil && mt.Schema.Value.Example != nil)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody != nil {
				for name, mt := range op.RequestBody.Value.Content {
					if !has(mt) {
						t.Errorf("%s %s request %s: no example", method, path, name)
					}
				}
			}
			for code, r := range op.Responses.Map() {
				for name, mt := range r.Value.Content {
					if !has(mt) {
						t.Errorf("%s %s %s %s: no example", method, path, code, name)
					}
				}
			}
		}
	}
}

// thingDoc is a document with one schema, Thing, for the tests of the example rules.
func thingDoc(props openapi3.Schemas, example any) *openapi3.T {
	s := openapi3.NewObjectSchema()
	s.Properties = props
	s.Example = example
	return &openapi3.T{
		OpenAPI:    "3.0.3",
		Paths:      openapi3.NewPaths(),
		Components: &openapi3.Components{Schemas: openapi3.Schemas{"Thing": &openapi3.SchemaRef{Value: s}}},
	}
}

func withExample(s *openapi3.Schema, ex any) *openapi3.SchemaRef {
	s.Example = ex
	return &openapi3.SchemaRef{Value: s}
}

func TestASchemaWithoutAnExampleFailsGeneration(t *testing.T) {
	doc := thingDoc(openapi3.Schemas{
		"id":   withExample(openapi3.NewStringSchema(), "thg_1"),
		"name": openapi3.NewStringSchema().NewRef(),
	}, nil)
	err := schemaExamples(doc)
	if err == nil || !strings.Contains(err.Error(), "Thing.name") {
		t.Fatalf("want an error naming Thing.name, got %v", err)
	}

	// With every property's example, the schema's is built from them; a nullable property
	// without one shows null.
	note := openapi3.NewStringSchema()
	note.Nullable = true
	doc = thingDoc(openapi3.Schemas{
		"id":   withExample(openapi3.NewStringSchema(), "thg_1"),
		"note": note.NewRef(),
		"tags": openapi3.NewArraySchema().WithItems(withExample(openapi3.NewStringSchema(), "blue").Value).NewRef(),
	}, nil)
	if err := schemaExamples(doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": "thg_1", "note": nil, "tags": []any{"blue"}}
	if got := doc.Components.Schemas["Thing"].Value.Example; !reflect.DeepEqual(got, want) {
		t.Errorf("built example %v, want %v", got, want)
	}
}

func TestAnExampleThatDoesNotFitItsSchemaFailsGeneration(t *testing.T) {
	props := func() openapi3.Schemas {
		return openapi3.Schemas{"at": openapi3.NewDateTimeSchema().NewRef(), "count": openapi3.NewIntegerSchema().NewRef()}
	}
	for name, ex := range map[string]any{
		"a date-time that is not one": map[string]any{"at": "yesterday", "count": 1},
		"a string for an integer":     map[string]any{"at": "2025-01-15T10:30:00Z", "count": "1"},
	} {
		if err := validateExamples(thingDoc(props(), ex)); err == nil || !strings.Contains(err.Error(), "Thing") {
			t.Errorf("%s: want an error naming Thing, got %v", name, err)
		}
	}
	if err := validateExamples(thingDoc(props(), map[string]any{"at": "2025-01-15T10:30:00+00:00", "count": 1})); err != nil {
		t.Errorf("a fitting example: %v", err)
	}
}

// Each catalogue event type is one branch of EventInput and of EventPayload, with the
// catalogue's fields, so adding an event type to the catalogue documents it.
func TestEventSchemasFollowTheCatalogue(t *testing.T) {
	doc := loadGenerated(t)
	for _, union := range []struct{ name, suffix string }{{eventInputSchema, "Input"}, {eventPayloadSchema, "Payload"}} {
		s := schema(t, doc, union.name)
		if s.Discriminator == nil || s.Discriminator.PropertyName != "event" {
			t.Fatalf("%s: discriminator %+v, want on event", union.name, s.Discriminator)
		}
		if len(s.OneOf) != len(models.Catalogue) || len(s.Discriminator.Mapping) != len(models.Catalogue) {
			t.Errorf("%s: %d branches, %d mappings; the catalogue has %d types", union.name, len(s.OneOf), len(s.Discriminator.Mapping), len(models.Catalogue))
		}
		for i, et := range models.Catalogue {
			branch := typeName(et.Name) + union.suffix
			ref := "#/components/schemas/" + branch
			if i < len(s.OneOf) && s.OneOf[i].Ref != ref {
				t.Errorf("%s branch %d: %s, want %s", union.name, i, s.OneOf[i].Ref, ref)
			}
			if s.Discriminator.Mapping[et.Name].Ref != ref {
				t.Errorf("%s: %s maps to %q, want %s", union.name, et.Name, s.Discriminator.Mapping[et.Name].Ref, ref)
			}
			b := schema(t, doc, branch)
			if ev := b.Properties["event"].Value; len(ev.Enum) != 1 || ev.Enum[0] != et.Name {
				t.Errorf("%s.event: enum %v, want [%s]", branch, ev.Enum, et.Name)
			}
			data := b.Properties["data"].Value
			var names []string
			for _, f := range et.Fields {
				names = append(names, f.Name)
				if data.Properties[f.Name] == nil {
					t.Errorf("%s.data lacks %s", branch, f.Name)
				}
			}
			if len(data.Properties) != len(et.Fields) || data.AdditionalProperties.Has == nil || *data.AdditionalProperties.Has {
				t.Errorf("%s.data: properties %d (want %v), closed %v", branch, len(data.Properties), names, data.AdditionalProperties.Has)
			}
		}
	}
	// What a webhook receives is the catalogue's own example body.
	for i, et := range models.Catalogue {
		var want any
		if err := json.Unmarshal(et.Example(exampleTime.Add(time.Duration(i)*time.Minute)), &want); err != nil {
			t.Fatal(err)
		}
		if got := jsonValue(schema(t, doc, typeName(et.Name)+"Payload").Example); !reflect.DeepEqual(got, want) {
			t.Errorf("%s payload example %v, want the catalogue's %v", et.Name, got, want)
		}
	}
	if ref := schema(t, doc, "Event").Properties["payload"].Ref; ref != "#/components/schemas/"+eventPayloadSchema {
		t.Errorf("Event.payload is %q, want a reference to %s", ref, eventPayloadSchema)
	}
}

// x-example-of=null and =absent show a field null, or leave it out, in its object's example,
// keeping the field's own example.
func TestMarkedFieldsAreNullOrAbsentInTheirObjectsExample(t *testing.T) {
	marked := func(kind string) *openapi3.SchemaRef {
		s := openapi3.NewStringSchema()
		s.Example = "the webhook was disabled"
		s.Extensions = map[string]any{exampleMarker: kind}
		return s.NewRef()
	}
	doc := thingDoc(openapi3.Schemas{
		"id":    withExample(openapi3.NewStringSchema(), "thg_1"),
		"error": marked(exampleAbsent),
		"note":  marked(exampleNull),
	}, nil)
	if err := schemaExamples(doc); err != nil {
		t.Fatal(err)
	}
	thing := doc.Components.Schemas["Thing"].Value
	if got, want := thing.Example, map[string]any{"id": "thg_1", "note": nil}; !reflect.DeepEqual(got, want) {
		t.Errorf("built example %v, want %v", got, want)
	}
	if ex := thing.Properties["error"].Value.Example; ex != "the webhook was disabled" {
		t.Errorf("the field lost its own example: %v", ex)
	}
}
