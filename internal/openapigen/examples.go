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
//
// The first becomes the named examples of the JSON request body, which Swagger UI prefills
// ("Try it out" then sends a valid request); the second the example of that problem response.
const (
	requestExamplesExt = "x-request-examples"
	problemExtPrefix   = "x-problem-"
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
