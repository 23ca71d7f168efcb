package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-openapi/spec"
	"github.com/hookrelay/hookrelay/delivery"
	"github.com/hookrelay/hookrelay/models"
)

// The event catalogue (models.Catalogue) decides what each event's data holds, so the document
// takes it from there rather than from annotations: adding an event type to the catalogue adds
// its schemas here. Per event type it writes
//
//   - <Type>Data: data as a publisher sends it (what BuildBody accepts);
//   - <Type>Input: a publish of that type, one branch of EventInput's oneOf on `event`;
//   - <Type>Payload: the exact body every webhook receives, one branch of EventPayload.
const (
	eventInputSchema   = "EventInput"
	eventPayloadSchema = "EventPayload"
	// A response field tagged `extensions:"x-event-payload"` holds a delivered body: it becomes a
	// reference to EventPayload. One tagged `extensions:"x-example-of=<kind>"` gets the example
	// markedExample builds for its kind from the catalogue.
	payloadMarker = "x-event-payload"
	exampleMarker = "x-example-of"
	// x-example-of=null and x-example-of=absent keep a field's own example for its schema but
	// show it null, or leave it out, in its object's example: the state most objects are in (a
	// webhook with no backlog, a capture that was accepted).
	exampleNull   = "null"
	exampleAbsent = "absent"
)

// timestampPattern is models.TimestampLayout as a pattern: the document states the fixed form
// of delivered times, which format date-time alone (any RFC 3339 offset, fractions) does not.
const timestampPattern = `^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$`

// exampleTime is when the catalogue's first example happens; each later type is a minute later,
// as GET /api/v1/event-types answers.
var exampleTime = time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)

// eventSchemas adds the per-event schemas and points EventInput and the marked fields at them.
func eventSchemas(doc *openapi3.T) error {
	schemas := doc.Components.Schemas
	input := schemas[eventInputSchema]
	if input == nil || input.Value == nil {
		return fmt.Errorf("no %s schema: the publish operation must take it as its body", eventInputSchema)
	}
	inputs := &openapi3.Schema{
		Description:   input.Value.Description,
		Discriminator: &openapi3.Discriminator{PropertyName: "event", Mapping: map[string]openapi3.MappingRef{}},
	}
	payloads := &openapi3.Schema{
		Description:   "The body every webhook receives for an event: exactly `event`, `timestamp` and `data`, in that order, with every field of the event type present (`null` where unknown) and times as `2025-01-15T10:30:00+00:00`.",
		Discriminator: &openapi3.Discriminator{PropertyName: "event", Mapping: map[string]openapi3.MappingRef{}},
	}
	timestamp := input.Value.Properties["timestamp"]
	for i, et := range models.Catalogue {
		name := typeName(et.Name)
		at := exampleTime.Add(time.Duration(i) * time.Minute)
		data, err := publishedData(et)
		if err != nil {
			return err
		}
		schemas[name+"Data"] = &openapi3.SchemaRef{Value: data}
		ref := func(n string) *openapi3.SchemaRef { return openapi3.NewSchemaRef("#/components/schemas/"+n, nil) }

		in := closedObject(fmt.Sprintf("Publishes a `%s` event: %s.", et.Name, lowerFirst(et.Description)))
		in.Properties = openapi3.Schemas{"event": eventName(et.Name), "data": ref(name + "Data"), "timestamp": timestamp}
		in.Required = []string{"data", "event"}
		in.Example = json.RawMessage(`{"event":` + string(mustJSON(et.Name)) + `,"data":` + string(data.Example.(json.RawMessage)) + `}`)
		schemas[name+"Input"] = &openapi3.SchemaRef{Value: in}
		inputs.OneOf = append(inputs.OneOf, ref(name+"Input"))
		inputs.Discriminator.Mapping[et.Name] = openapi3.MappingRef{Ref: "#/components/schemas/" + name + "Input"}

		p, err := deliveredBody(et, at)
		if err != nil {
			return err
		}
		schemas[name+"Payload"] = &openapi3.SchemaRef{Value: p}
		payloads.OneOf = append(payloads.OneOf, ref(name+"Payload"))
		payloads.Discriminator.Mapping[et.Name] = openapi3.MappingRef{Ref: "#/components/schemas/" + name + "Payload"}
		if i == 0 {
			inputs.Example = in.Example
			payloads.Example = p.Example
		}
	}
	schemas[eventInputSchema] = &openapi3.SchemaRef{Value: inputs}
	schemas[eventPayloadSchema] = &openapi3.SchemaRef{Value: payloads}
	publishExamples(doc)
	return markedFields(doc)
}

// publishExamples names one example per event type on each body that is an EventInput, which
// Swagger UI lists for "Try it out", unless the operation's annotation names its own.
func publishExamples(doc *openapi3.T) {
	for _, path := range doc.Paths.Keys() {
		for _, op := range doc.Paths.Value(path).Operations() {
			if op.RequestBody == nil || op.RequestBody.Value == nil {
				continue
			}
			mt := op.RequestBody.Value.Content.Get("application/json")
			if _, own := op.Extensions[requestExamplesExt]; own || mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/"+eventInputSchema {
				continue
			}
			mt.Examples = openapi3.Examples{}
			for _, et := range models.Catalogue {
				in := doc.Components.Schemas[typeName(et.Name)+"Input"].Value
				mt.Examples[et.Name] = &openapi3.ExampleRef{Value: &openapi3.Example{Summary: et.Description, Value: in.Example}}
			}
		}
	}
}

// markedFields replaces each field tagged x-event-payload with a reference to EventPayload and
// gives each field tagged x-example-of the example it names, built from the catalogue so that
// it shows what the server really sends.
func markedFields(doc *openapi3.T) error {
	payloadRef := openapi3.NewSchemaRef("#/components/schemas/"+eventPayloadSchema, nil)
	for _, name := range sortedKeys(doc.Components.Schemas) {
		s := doc.Components.Schemas[name].Value
		if s == nil {
			continue
		}
		for _, prop := range sortedKeys(s.Properties) {
			p := s.Properties[prop].Value
			if p == nil {
				continue
			}
			if _, ok := p.Extensions[payloadMarker]; ok {
				s.Properties[prop] = payloadRef
				continue
			}
			kind, ok := p.Extensions[exampleMarker]
			if !ok || kind == exampleNull || kind == exampleAbsent {
				// Left for the example builder, which removes them.
				continue
			}
			delete(p.Extensions, exampleMarker)
			ex, err := markedExample(fmt.Sprint(kind), p)
			if err != nil {
				return fmt.Errorf("%s.%s: %w", name, prop, err)
			}
			p.Example = ex
		}
	}
	return nil
}

// exampleSecret signs the example deliveries: the Secret schema's example.
const exampleSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// exampleEventID is the Event schema's example id, which deliveries carry as X-Webhook-Id.
const exampleEventID = "evt_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"

func markedExample(kind string, p *openapi3.Schema) (any, error) {
	et := models.Catalogue[0]
	body := et.Example(exampleTime)
	switch kind {
	case "event-schema":
		return et.JSONSchema(), nil
	case "delivery-body":
		return string(body), nil
	case "delivery-body-size":
		return len(body), nil
	case "delivery-headers":
		// The real sender's headers for the catalogue's example, signed with the example secret.
		sender := delivery.NewSender(delivery.SenderConfig{Version: "1.4.0"})
		h := sender.Headers(delivery.Request{Webhook: &models.Webhook{Secret: exampleSecret}, MessageID: exampleEventID,
			EventType: et.Name, Body: body, Attempt: 1}, exampleTime)
		multi := p.AdditionalProperties.Schema != nil && p.AdditionalProperties.Schema.Value != nil &&
			p.AdditionalProperties.Schema.Value.Type.Is("array")
		out := map[string]any{}
		for k, v := range h {
			if multi {
				out[k] = v
			} else {
				out[k] = strings.Join(v, ", ")
			}
		}
		return out, nil
	case "empty":
		// A list that the example's other fields say is empty (no problems with a valid body).
		return []any{}, nil
	case "response-headers":
		// What a receiver built on a common framework answers to a delivery.
		return map[string]any{"Content-Type": []any{"application/json; charset=utf-8"}, "Content-Length": []any{"11"}}, nil
	}
	return nil, fmt.Errorf("%s %q: want event-schema, delivery-body, delivery-body-size, delivery-headers, response-headers, empty, null or absent", exampleMarker, kind)
}

// publishedData is an event type's data as a publisher sends it, from the catalogue's JSON
// Schema (2020-12) said in OpenAPI 3.0: a field that may be left out may also be null, which
// BuildBody takes as "not given".
func publishedData(et models.EventType) (*openapi3.Schema, error) {
	js := et.JSONSchema()
	required, _ := js["required"].([]string)
	props, _ := js["properties"].(map[string]any)
	s := closedObject(fmt.Sprintf("The data of a `%s` event as published. Fields left out (or null) are delivered as null, false for booleans, and the event's time for times.", et.Name))
	s.Required = required
	s.Properties = openapi3.Schemas{}
	// In the catalogue's order, as the body is delivered.
	example := []byte{'{'}
	for i, f := range et.Fields {
		p, err := fieldSchema(props[f.Name], !f.Required)
		if err != nil {
			return nil, fmt.Errorf("catalogue %s.%s: %w", et.Name, f.Name, err)
		}
		if f.Example != nil {
			p.Example = f.Example
		}
		s.Properties[f.Name] = &openapi3.SchemaRef{Value: p}
		if i > 0 {
			example = append(example, ',')
		}
		example = append(append(append(example, mustJSON(f.Name)...), ':'), mustJSON(f.Example)...)
	}
	s.Example = json.RawMessage(append(example, '}'))
	return s, nil
}

// deliveredBody is the exact body a webhook receives for an event type: every key present,
// times in the fixed layout, with the catalogue's example body (the one the test action sends).
func deliveredBody(et models.EventType, at time.Time) (*openapi3.Schema, error) {
	js := et.JSONSchema()
	props, _ := js["properties"].(map[string]any)
	data := closedObject("")
	data.Properties = openapi3.Schemas{}
	for _, f := range et.Fields {
		p, err := fieldSchema(props[f.Name], false)
		if err != nil {
			return nil, fmt.Errorf("catalogue %s.%s: %w", et.Name, f.Name, err)
		}
		// Delivered, a default is already applied and a time has one form.
		p.Default = nil
		if p.Format == "date-time" {
			p.Pattern = timestampPattern
		}
		data.Properties[f.Name] = &openapi3.SchemaRef{Value: p}
		data.Required = append(data.Required, f.Name)
	}
	body := closedObject(fmt.Sprintf("The body webhooks receive for a `%s` event (%s).", et.Name, lowerFirst(et.Description)))
	ts := openapi3.NewDateTimeSchema()
	ts.Pattern = timestampPattern
	ts.Description = "When the event happened, UTC, whole seconds."
	body.Properties = openapi3.Schemas{"event": eventName(et.Name), "timestamp": &openapi3.SchemaRef{Value: ts}, "data": &openapi3.SchemaRef{Value: data}}
	body.Required = []string{"data", "event", "timestamp"}
	// The bytes as delivered: the document keeps an example's key order.
	body.Example = json.RawMessage(et.Example(at))
	return body, nil
}

// fieldSchema reads one property of the catalogue's JSON Schema; a type list with "null" (2020-12)
// becomes OpenAPI 3.0's nullable.
func fieldSchema(prop any, nullable bool) (*openapi3.Schema, error) {
	m, ok := prop.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("no JSON Schema property")
	}
	c := map[string]any{}
	for k, v := range m {
		c[k] = v
	}
	if types, ok := c["type"].([]string); ok {
		c["type"] = nil
		for _, t := range types {
			if t == "null" {
				nullable = true
			} else {
				c["type"] = t
			}
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var s openapi3.Schema
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	s.Nullable = nullable
	return &s, nil
}

func closedObject(description string) *openapi3.Schema {
	s := openapi3.NewObjectSchema()
	s.Description = description
	s.AdditionalProperties = openapi3.AdditionalProperties{Has: openapi3.Ptr(false)}
	return s
}

func eventName(name string) *openapi3.SchemaRef {
	s := openapi3.NewStringSchema()
	s.Enum = []any{name}
	s.Example = name
	return &openapi3.SchemaRef{Value: s}
}

// typeName: "conversation.started" → "ConversationStarted".
func typeName(event string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(event, func(r rune) bool { return r == '.' || r == '_' || r == '-' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// backport gives the Swagger 2.0 document what the OpenAPI 3 one got after conversion: each
// definition and marked property its example, and no generator markers left behind. Swagger 2.0
// has no oneOf, so EventInput and the payloads stay objects there.
func backport(v2 *spec.Swagger, v3 *openapi3.T) {
	for name, def := range v2.Definitions {
		s3 := v3.Components.Schemas[name]
		if s3 == nil || s3.Value == nil {
			continue
		}
		if def.Example == nil {
			def.Example = s3.Value.Example
		}
		for prop, p := range def.Properties {
			_, payload := p.Extensions[payloadMarker]
			_, marked := p.Extensions[exampleMarker]
			delete(p.Extensions, payloadMarker)
			delete(p.Extensions, exampleMarker)
			if len(p.Extensions) == 0 {
				p.Extensions = nil
			}
			p3 := s3.Value.Properties[prop]
			switch {
			case p3 == nil:
			case payload:
				p.Example = v3.Components.Schemas[eventPayloadSchema].Value.Example
			case marked && p3.Value != nil && p3.Value.Example != nil:
				p.Example = p3.Value.Example
			case marked && p3.Ref != "" && len(p.AllOf) == 1 && p.Extensions == nil && p.Description == "":
				// The allOf only carried the marker (see bareRef).
				p = spec.Schema{SchemaProps: spec.SchemaProps{Ref: p.AllOf[0].Ref}}
			}
			def.Properties[prop] = p
		}
		v2.Definitions[name] = def
	}
}

// mustJSON encodes a catalogue value (a name, a string, a number, a boolean or nil), which
// cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
