package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Operation extensions that the annotations use for what swag v1 cannot say (its @x- lines take
// a JSON value):
//
//	@x-request-examples	{"name": {"summary": "…", "value": {…}}, …}
//	@x-problem-409		"the detail this operation answers"   (or {"detail": "…", "errors": […]})
//	@x-response-examples	{"200": …, "default": …}
//
// The first becomes the named examples of the JSON request body, which Swagger UI prefills
// ("Try it out" then sends a valid request); the second the example of that problem response;
// the third the examples of responses whose schema is not one of ours (a map, a file, a page).
const (
	requestExamplesExt  = "x-request-examples"
	problemExtPrefix    = "x-problem-"
	responseExamplesExt = "x-response-examples"
)

// problemKinds must match api's problemTitles (api's tests compare them): the type and title
// the server sends for a status, and the detail shown when an operation names none.
var problemKinds = map[int]struct{ slug, title, detail string }{
	400: {"bad-request", "Bad request", "the body must be a JSON object: unexpected end of JSON input"},
	401: {"unauthorized", "Authentication required", "send Authorization: Bearer <token> or log in"},
	403: {"forbidden", "Forbidden", "cross-site request refused: send X-Requested-With from the same origin"},
	404: {"not-found", "Not found", "Not found"},
	405: {"method-not-allowed", "Method not allowed", "Method not allowed"},
	409: {"conflict", "Conflict", "Conflict"},
	413: {"too-large", "Request body too large", "the body is larger than 1048576 bytes"},
	415: {"unsupported-media-type", "Unsupported media type", "send the body as application/json"},
	422: {"validation", "Validation failed", ""}, // from the operation's body: see problemExample
	429: {"rate-limited", "Too many requests", "too many failed sign-ins: try again in 6 s"},
	500: {"internal", "Internal server error", "Internal server error"},
	503: {"unavailable", "Service unavailable", "database unreachable"},
}

// examples applies the operations' example extensions and gives every problem response an
// example that fits its status (and operation), instead of the Problem schema's one example.
func examples(doc *openapi3.T) error {
	for _, path := range doc.Paths.Keys() {
		for method, op := range doc.Paths.Value(path).Operations() {
			where := method + " " + path
			if err := requestExamples(doc, op, where); err != nil {
				return err
			}
			if err := operationProblems(doc, op, where); err != nil {
				return err
			}
			if err := responseExamples(op, where); err != nil {
				return err
			}
		}
	}
	for _, name := range sortedKeys(doc.Components.Responses) {
		r := doc.Components.Responses[name]
		code, ok := sharedStatus(name)
		if !ok || r.Value == nil {
			continue
		}
		if mt := r.Value.Content.Get(problemMediaType); mt != nil {
			mt.Example = problemExample(code, nil, nil)
		}
	}
	return nil
}

// sharedStatus finds the status of a shared response by its component name.
func sharedStatus(name string) (int, bool) {
	for code, sr := range sharedErrors {
		if sr.name == name {
			n, err := strconv.Atoi(code)
			return n, err == nil
		}
	}
	return 0, false
}

func requestExamples(doc *openapi3.T, op *openapi3.Operation, where string) error {
	raw, ok := op.Extensions[requestExamplesExt]
	if !ok {
		return nil
	}
	delete(op.Extensions, requestExamplesExt)
	var mt *openapi3.MediaType
	if op.RequestBody != nil && op.RequestBody.Value != nil {
		mt = op.RequestBody.Value.Content.Get("application/json")
	}
	if mt == nil {
		return fmt.Errorf("%s: @%s needs a JSON request body", where, requestExamplesExt)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return fmt.Errorf("%s: @%s: %w", where, requestExamplesExt, err)
	}
	var named map[string]struct {
		Summary string `json:"summary"`
		Value   any    `json:"value"`
	}
	if err := json.Unmarshal(b, &named); err != nil || len(named) == 0 {
		return fmt.Errorf("%s: @%s must be {\"name\": {\"summary\": …, \"value\": …}}", where, requestExamplesExt)
	}
	mt.Examples = openapi3.Examples{}
	for name, ex := range named {
		if ex.Value == nil {
			return fmt.Errorf("%s: @%s %q has no value", where, requestExamplesExt, name)
		}
		mt.Examples[name] = &openapi3.ExampleRef{Value: &openapi3.Example{Summary: ex.Summary, Value: ex.Value}}
	}
	// Swagger UI with "Try it out" already on fills the body from the schema, not from the
	// named examples: the body's schema gets the first example as its own.
	first := sortedKeys(named)[0]
	if s := bodySchema(doc, op); s != nil {
		s.Example = named[first].Value
	}
	return nil
}

func responseExamples(op *openapi3.Operation, where string) error {
	raw, ok := op.Extensions[responseExamplesExt]
	if !ok {
		return nil
	}
	delete(op.Extensions, responseExamplesExt)
	byStatus, ok := raw.(map[string]any)
	if !ok || len(byStatus) == 0 {
		return fmt.Errorf("%s: @%s must be {\"<status>\": example, …}", where, responseExamplesExt)
	}
	for _, code := range sortedKeys(byStatus) {
		var r *openapi3.ResponseRef
		if op.Responses != nil {
			r = op.Responses.Value(code)
		}
		if r == nil || r.Value == nil || len(r.Value.Content) == 0 {
			return fmt.Errorf("%s: @%s names %s, which the operation does not document with a body", where, responseExamplesExt, code)
		}
		for _, mt := range r.Value.Content {
			mt.Example = byStatus[code]
		}
	}
	return nil
}

func operationProblems(doc *openapi3.T, op *openapi3.Operation, where string) error {
	overrides := map[int]any{}
	for key, v := range op.Extensions {
		if rest, ok := strings.CutPrefix(key, problemExtPrefix); ok {
			code, err := strconv.Atoi(rest)
			if err != nil {
				return fmt.Errorf("%s: @%s: not a status", where, key)
			}
			overrides[code] = v
			delete(op.Extensions, key)
		}
	}
	if op.Responses == nil {
		return nil
	}
	for code, r := range op.Responses.Map() {
		n, err := strconv.Atoi(code)
		if err != nil || n < 400 {
			continue
		}
		override, has := overrides[n]
		delete(overrides, n)
		if r.Ref != "" {
			if has {
				return fmt.Errorf("%s: @%s%d overrides a shared response: document the status with @Failure", where, problemExtPrefix, n)
			}
			continue
		}
		if r.Value == nil {
			continue
		}
		if mt := r.Value.Content.Get(problemMediaType); mt != nil {
			mt.Example = problemExample(n, override, bodySchema(doc, op))
		}
	}
	for n := range overrides {
		return fmt.Errorf("%s: @%s%d names a status the operation does not document", where, problemExtPrefix, n)
	}
	return nil
}

// bodySchema is the operation's JSON request body schema, resolved, or nil.
func bodySchema(doc *openapi3.T, op *openapi3.Operation) *openapi3.Schema {
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return nil
	}
	mt := op.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	if name, ok := strings.CutPrefix(mt.Schema.Ref, "#/components/schemas/"); ok {
		if s := doc.Components.Schemas[name]; s != nil {
			return s.Value
		}
	}
	return mt.Schema.Value
}

// problemExample is the problem document a status answers: the operation's own detail (and
// field errors) when its annotation gives one; for 422 without one, a missing required field of
// the operation's body.
func problemExample(code int, override any, body *openapi3.Schema) map[string]any {
	kind, ok := problemKinds[code]
	if !ok {
		kind.slug, kind.title, kind.detail = "error", strconv.Itoa(code), strconv.Itoa(code)
	}
	ex := map[string]any{"type": "urn:hookrelay:problem:" + kind.slug, "title": kind.title, "status": code, "detail": kind.detail}
	switch v := override.(type) {
	case string:
		ex["detail"] = v
		return ex
	case map[string]any:
		for k, val := range v {
			ex[k] = val
		}
		return ex
	}
	if code == 422 {
		field := "name"
		if body != nil {
			if len(body.Required) > 0 {
				field = body.Required[0]
			} else if len(body.Properties) > 0 {
				names := make([]string, 0, len(body.Properties))
				for n := range body.Properties {
					names = append(names, n)
				}
				sort.Strings(names)
				field = names[0]
			}
		}
		ex["detail"] = field + ": is required"
		ex["errors"] = []any{map[string]any{"field": field, "message": "is required"}}
	}
	return ex
}

// schemaExamples gives every component schema without an example one built from its
// properties' examples (the `example:"…"` tags, references followed), and fails naming each
// property that has none, so no schema reaches the document without an example. A nullable
// property without one shows null; an enum, its first value. The examples are then validated
// against their schemas when the document is loaded (see toOpenAPI3).
func schemaExamples(doc *openapi3.T) error {
	b := exampleBuilder{doc: doc, done: map[string]any{}, busy: map[string]bool{}}
	for _, name := range sortedKeys(doc.Components.Schemas) {
		b.component(name)
	}
	eachContent(doc, b.content)
	if len(b.missing) > 0 {
		return fmt.Errorf("schemas without an example (give the Go field an `example:\"…\"` tag):\n\t%s", strings.Join(b.missing, "\n\t"))
	}
	return nil
}

type exampleBuilder struct {
	doc     *openapi3.T
	done    map[string]any
	busy    map[string]bool
	missing []string
}

// component returns the example of a component schema, building and storing it when missing.
func (b *exampleBuilder) component(name string) (any, bool) {
	if ex, ok := b.done[name]; ok {
		return ex, ex != nil
	}
	ref := b.doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil || b.busy[name] {
		// A schema that contains itself has no finite example built this way: it needs its own.
		b.missing = append(b.missing, name+": no example, and none can be built")
		b.done[name] = nil
		return nil, false
	}
	b.busy[name] = true
	ex, ok := b.of(ref, name)
	delete(b.busy, name)
	if ok && ref.Value.Example == nil {
		ref.Value.Example = ex
	}
	if !ok {
		ex = nil
	}
	b.done[name] = ex
	return ex, ok
}

// of returns the example of a schema, recording where one is missing.
func (b *exampleBuilder) of(ref *openapi3.SchemaRef, where string) (any, bool) {
	if ref == nil {
		return nil, false
	}
	if name, ok := strings.CutPrefix(ref.Ref, "#/components/schemas/"); ok {
		return b.component(name)
	}
	s := ref.Value
	if s == nil {
		return nil, false
	}
	switch {
	case s.Example != nil:
		return s.Example, true
	case len(s.Enum) > 0:
		return s.Enum[0], true
	case s.Default != nil:
		return s.Default, true
	case len(s.AllOf) == 1:
		return b.of(s.AllOf[0], where)
	case len(s.OneOf) > 0:
		return b.of(s.OneOf[0], where)
	case s.Type.Is("array"):
		item, ok := b.of(s.Items, where+"[]")
		if !ok {
			return nil, false
		}
		return []any{item}, true
	case s.Type.Is("object") && len(s.Properties) > 0:
		out := map[string]any{}
		ok := true
		for _, name := range sortedKeys(s.Properties) {
			p := s.Properties[name]
			if p.Value != nil {
				if kind, ok := p.Value.Extensions[exampleMarker]; ok {
					delete(p.Value.Extensions, exampleMarker)
					s.Properties[name] = bareRef(p)
					if kind == exampleAbsent {
						continue
					}
					out[name] = nil
					continue
				}
			}
			v, has := b.of(p, where+"."+name)
			if !has && p.Value != nil && p.Value.Nullable {
				v, has = nil, true
			}
			if !has {
				ok = false
				continue
			}
			out[name] = v
		}
		return out, ok
	case s.Nullable:
		return nil, true
	}
	b.missing = append(b.missing, where)
	return nil, false
}

// content checks that each media type of an operation's body or response has an example: its
// own, named ones, or its schema's.
func (b *exampleBuilder) content(where string, content openapi3.Content) {
	for _, name := range sortedKeys(content) {
		mt := content[name]
		if mt == nil || mt.Example != nil || len(mt.Examples) > 0 || mt.Schema == nil {
			continue
		}
		b.of(mt.Schema, where+" "+name)
	}
}

// validateExamples checks every example against its schema, formats included (a date-time
// example must be one), so that an example cannot drift from the schema it illustrates: the
// component schemas' and their properties', and each body's and response's, named ones too.
// doc must be loaded (references resolved).
func validateExamples(doc *openapi3.T) error {
	var bad []string
	check := func(where string, s *openapi3.SchemaRef, example any) {
		if s == nil || s.Value == nil || example == nil {
			return
		}
		if err := s.Value.VisitJSON(jsonValue(example), openapi3.EnableFormatValidation(), openapi3.MultiErrors()); err != nil {
			bad = append(bad, where+": "+strings.ReplaceAll(err.Error(), "\n", " "))
		}
	}
	for _, name := range sortedKeys(doc.Components.Schemas) {
		s := doc.Components.Schemas[name]
		if s.Value == nil {
			continue
		}
		check(name, s, s.Value.Example)
		for _, prop := range sortedKeys(s.Value.Properties) {
			if p := s.Value.Properties[prop]; p.Ref == "" && p.Value != nil {
				check(name+"."+prop, p, p.Value.Example)
			}
		}
	}
	content := func(where string, c openapi3.Content) {
		for _, name := range sortedKeys(c) {
			mt := c[name]
			if mt == nil {
				continue
			}
			check(where+" "+name, mt.Schema, mt.Example)
			for _, ex := range sortedKeys(mt.Examples) {
				if e := mt.Examples[ex]; e != nil && e.Value != nil {
					check(where+" "+name+" example "+ex, mt.Schema, e.Value.Value)
				}
			}
		}
	}
	eachContent(doc, content)
	for _, name := range sortedKeys(doc.Components.Responses) {
		if r := doc.Components.Responses[name]; r.Value != nil {
			content("response "+name, r.Value.Content)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("examples that do not validate against their schemas:\n\t%s", strings.Join(bad, "\n\t"))
	}
	return nil
}

// jsonValue is v as encoding/json decodes it (maps, float64…), which VisitJSON expects.
func jsonValue(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}

// eachContent calls fn with the content of every operation's request body and of every
// response it documents itself (shared ones live under components/responses), in a stable order.
func eachContent(doc *openapi3.T, fn func(where string, c openapi3.Content)) {
	for _, path := range doc.Paths.Keys() {
		item := doc.Paths.Value(path)
		for _, method := range sortedKeys(item.Operations()) {
			op := item.Operations()[method]
			where := method + " " + path
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				fn(where+" request", op.RequestBody.Value.Content)
			}
			if op.Responses == nil {
				continue
			}
			for _, code := range sortedKeys(op.Responses.Map()) {
				if r := op.Responses.Value(code); r != nil && r.Ref == "" && r.Value != nil {
					fn(where+" "+code, r.Value.Content)
				}
			}
		}
	}
}

// bareRef undoes the allOf that swag wraps around a reference to carry a field's extensions,
// once the generator has consumed them: a lone allOf is what linters call illogical.
func bareRef(p *openapi3.SchemaRef) *openapi3.SchemaRef {
	if p.Value == nil || len(p.Value.AllOf) != 1 || p.Value.AllOf[0].Ref == "" || len(p.Value.Extensions) > 0 {
		return p
	}
	rest := *p.Value
	rest.AllOf, rest.Extensions = nil, nil
	if b, err := json.Marshal(&rest); err != nil || string(b) != "{}" {
		return p
	}
	return openapi3.NewSchemaRef(p.Value.AllOf[0].Ref, nil)
}
