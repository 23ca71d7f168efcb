package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/go-openapi/spec"
)

// refineSwagger fixes what swag v1 cannot say from annotations alone, using the Go source:
//
//   - Response schemas list as required every property whose Go field has no omitempty, since
//     encoding/json always writes those; request schemas keep what their tags say, and are
//     closed (additionalProperties: false), as readInput refuses unknown fields.
//   - A pointer field without omitempty in a response encodes nil as null: it is nullable.
//   - time.Time fields are RFC 3339 strings: format date-time, with an example.
//   - Schema names lose swag's package prefix ("api.Secret" → "Secret") and generic instances
//     read as English ("api.List-Event" → "EventList").
//   - Operations without @ID get the handler's Go name as operationId.
func refineSwagger(raw []byte, structs *structIndex, routes map[string]string) (*spec.Swagger, error) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode swag's document: %w", err)
	}
	defs, _ := doc["definitions"].(map[string]any)
	paths, _ := doc["paths"].(map[string]any)

	inResponses, inRequests := map[string]bool{}, map[string]bool{}
	for _, item := range sortedKeys(paths) {
		ops, _ := paths[item].(map[string]any)
		for _, method := range sortedKeys(ops) {
			op, ok := ops[method].(map[string]any)
			if !ok {
				continue
			}
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				if pm, ok := p.(map[string]any); ok && pm["in"] == "body" {
					reach(pm["schema"], defs, inRequests)
				}
			}
			responses, _ := op["responses"].(map[string]any)
			for _, code := range sortedKeys(responses) {
				if r, ok := responses[code].(map[string]any); ok {
					reach(r["schema"], defs, inResponses)
				}
			}
			if _, has := op["operationId"]; !has {
				key := strings.ToUpper(method) + " " + item
				id, ok := routes[key]
				if !ok {
					return nil, fmt.Errorf("no handler with `@Router %s [%s]` found for operation %s", item, method, key)
				}
				op["operationId"] = id
			}
		}
	}

	for _, name := range sortedKeys(defs) {
		def, _ := defs[name].(map[string]any)
		props, _ := def["properties"].(map[string]any)
		st := structs.lookup(name)
		if st == nil || props == nil {
			continue
		}
		for _, prop := range sortedKeys(props) {
			f, ok := structs.field(st, prop)
			if m, isMap := props[prop].(map[string]any); ok && isMap && f.time && m["type"] == "string" && m["format"] == nil {
				m["format"] = "date-time"
				// A nullable time is shown null in its object's example (built from the
				// properties' examples): one fixed time on every such field would have a
				// running replay finished and a healthy webhook about to be disabled.
				if m["example"] == nil && (!f.pointer || f.omitEmpty) {
					m["example"] = "2025-01-15T10:30:00Z"
				}
			}
		}
		if !inResponses[name] {
			// readInput refuses fields it does not know with 422: request bodies are closed.
			if inRequests[name] {
				def["additionalProperties"] = false
			}
			continue
		}
		required := map[string]bool{}
		if old, ok := def["required"].([]any); ok {
			for _, r := range old {
				required[fmt.Sprint(r)] = true
			}
		}
		for _, prop := range sortedKeys(props) {
			f, ok := structs.field(st, prop)
			if !ok || f.omitEmpty {
				continue
			}
			if !inRequests[name] {
				required[prop] = true
			}
			if f.pointer {
				props[prop] = nullable(props[prop], defs)
			}
		}
		if len(required) > 0 {
			list := make([]any, 0, len(required))
			for _, r := range sortedKeys(required) {
				list = append(list, r)
			}
			def["required"] = list
		}
	}

	renames, err := schemaNames(defs)
	if err != nil {
		return nil, err
	}
	renamed := map[string]any{}
	for old, def := range defs {
		renamed[renames[old]] = def
	}
	if defs != nil {
		doc["definitions"] = renamed
	}
	rewriteRefs(doc, renames)

	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode refined document: %w", err)
	}
	var out spec.Swagger
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode refined document: %w", err)
	}
	return &out, nil
}

// nullable marks a property schema as allowing null. A $ref cannot carry siblings, so a
// referenced schema is wrapped in allOf, with the type that OpenAPI 3.0's nullable needs.
func nullable(prop any, defs map[string]any) any {
	m, ok := prop.(map[string]any)
	if !ok {
		return prop
	}
	if ref, ok := m["$ref"].(string); ok {
		wrapped := map[string]any{"allOf": []any{map[string]any{"$ref": ref}}, "x-nullable": true}
		// OpenAPI 3.0 only honours nullable next to a type.
		if target, ok := defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any); ok && target["type"] != nil {
			wrapped["type"] = target["type"]
		}
		for k, v := range m {
			if k != "$ref" {
				wrapped[k] = v
			}
		}
		return wrapped
	}
	// swag already wraps a $ref in allOf when the field has a description: it needs the
	// type just the same.
	if all, ok := m["allOf"].([]any); ok && len(all) == 1 && m["type"] == nil {
		if r, ok := all[0].(map[string]any); ok {
			if ref, ok := r["$ref"].(string); ok {
				if target, ok := defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any); ok && target["type"] != nil {
					m["type"] = target["type"]
				}
			}
		}
	}
	m["x-nullable"] = true
	return m
}

// reach adds to seen every definition a schema refers to, transitively.
func reach(schema any, defs map[string]any, seen map[string]bool) {
	switch v := schema.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, "#/definitions/")
			if !seen[name] {
				seen[name] = true
				reach(defs[name], defs, seen)
			}
		}
		for _, k := range sortedKeys(v) {
			if k != "$ref" && k != "example" {
				reach(v[k], defs, seen)
			}
		}
	case []any:
		for _, x := range v {
			reach(x, defs, seen)
		}
	}
}

// schemaNames maps swag's definition names to the published ones, refusing two Go types that
// would share a name (give one of them a `// @name`).
func schemaNames(defs map[string]any) (map[string]string, error) {
	out := map[string]string{}
	owner := map[string]string{}
	for _, old := range sortedKeys(defs) {
		name := publicName(old)
		if prev, dup := owner[name]; dup {
			return nil, fmt.Errorf("schemas %q and %q would both be named %q: add `// @name Other` after one type's closing brace", prev, old, name)
		}
		owner[name] = old
		out[old] = name
	}
	return out, nil
}

// publicName: "api.Secret" → "Secret", "api.List-api_Event" → "EventList",
// "github_com_x_api.Event" → "Event"; an alias without a dot stays as it is.
func publicName(def string) string {
	parts := strings.Split(def, "-")
	base := parts[0]
	if i := strings.LastIndex(base, "."); i >= 0 {
		base = base[i+1:]
	}
	var b strings.Builder
	for _, arg := range parts[1:] {
		if i := strings.LastIndexAny(arg, "._"); i >= 0 {
			arg = arg[i+1:]
		}
		b.WriteString(arg)
	}
	b.WriteString(base)
	return b.String()
}

func rewriteRefs(v any, renames map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["$ref"].(string); ok {
			if name, ok := strings.CutPrefix(ref, "#/definitions/"); ok {
				if n, ok := renames[name]; ok {
					x["$ref"] = "#/definitions/" + n
				}
			}
		}
		for k, val := range x {
			if k != "example" {
				rewriteRefs(val, renames)
			}
		}
	case []any:
		for _, val := range x {
			rewriteRefs(val, renames)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
