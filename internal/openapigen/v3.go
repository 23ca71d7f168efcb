package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-openapi/spec"
)

const (
	problemMediaType = "application/problem+json"
	// sessionCookie must equal api.SessionCookie; api's tests check the document against it.
	sessionCookie = "hookrelay_session"
	// authOptional is the operation extension that marks credentials as optional.
	authOptional = "x-auth-optional"
)

// toOpenAPI3 converts the Swagger 2.0 document with kin-openapi's openapi2conv, then says in
// OpenAPI 3 what Swagger 2.0 could not: problem responses' media type, the bearer scheme as
// HTTP auth, the UI's cookie session, a server. The result is loaded back and validated.
func toOpenAPI3(ctx context.Context, v2 *spec.Swagger) (*openapi3.T, error) {
	b, err := json.Marshal(v2)
	if err != nil {
		return nil, fmt.Errorf("encode Swagger 2.0: %w", err)
	}
	var doc2 openapi2.T
	if err := json.Unmarshal(b, &doc2); err != nil {
		return nil, fmt.Errorf("read Swagger 2.0 for conversion: %w", err)
	}
	doc, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		return nil, fmt.Errorf("convert to OpenAPI 3: %w", err)
	}

	// The committed document names no host: a relative server means "where this document was
	// fetched from". GET /openapi.json replaces it with the absolute --public-url.
	doc.Servers = openapi3.Servers{{URL: "/", Description: "The Hookrelay server that serves this document."}}
	// swag writes "contact": {} even without @contact lines.
	if c := doc.Info.Contact; c != nil && c.Name == "" && c.URL == "" && c.Email == "" {
		doc.Info.Contact = nil
	}
	problemResponses(doc)
	if err := securitySchemes(doc); err != nil {
		return nil, err
	}
	sharedResponses(doc)
	if err := eventSchemas(doc); err != nil {
		return nil, err
	}
	if err := examples(doc); err != nil {
		return nil, err
	}
	if err := schemaExamples(doc); err != nil {
		return nil, err
	}

	// Reload from bytes: conversion leaves $refs unresolved, and validation must see the
	// document exactly as it is written to disk.
	b, err = json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode OpenAPI 3: %w", err)
	}
	loader := openapi3.NewLoader()
	loaded, err := loader.LoadFromData(b)
	if err != nil {
		return nil, fmt.Errorf("load generated OpenAPI 3: %w", err)
	}
	if err := loaded.Validate(ctx); err != nil {
		return nil, fmt.Errorf("generated OpenAPI 3 is invalid: %w", err)
	}
	if err := validateExamples(loaded); err != nil {
		return nil, err
	}
	return doc, nil
}

// problemResponses: handlers answer every 4xx and 5xx with an RFC 9457 problem, whose media
// type swag's @Produce cannot express per response. Error responses in JSON, or with the
// Problem schema under any media type (an operation without @Produce gets */*), become
// application/problem+json.
func problemResponses(doc *openapi3.T) {
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.Responses == nil {
				continue
			}
			for code, resp := range op.Responses.Map() {
				n, err := strconv.Atoi(code)
				if (err != nil && code != "default") || (err == nil && n < 400) || resp.Value == nil {
					continue
				}
				content := resp.Value.Content
				for _, name := range sortedKeys(content) {
					mt := content[name]
					isProblem := mt != nil && mt.Schema != nil && strings.HasSuffix(mt.Schema.Ref, "/Problem")
					if name == "application/json" || isProblem {
						delete(content, name)
						content[problemMediaType] = mt
					}
				}
			}
		}
	}
}

// securitySchemes turns swag's apiKey "BearerAuth" (Swagger 2.0 has no bearer type) into HTTP
// bearer auth, and adds the admin UI's session cookie as an alternative wherever a bearer
// token is accepted, as the authenticator does.
func securitySchemes(doc *openapi3.T) error {
	schemes := doc.Components.SecuritySchemes
	bearer, ok := schemes["BearerAuth"]
	if !ok || bearer.Value == nil {
		return fmt.Errorf("api/doc.go must declare @securityDefinitions.apikey BearerAuth")
	}
	schemes["BearerAuth"] = &openapi3.SecuritySchemeRef{Value: &openapi3.SecurityScheme{
		Type: "http", Scheme: "bearer", Description: bearer.Value.Description}}
	schemes["SessionCookie"] = &openapi3.SecuritySchemeRef{Value: &openapi3.SecurityScheme{
		Type: "apiKey", In: "cookie", Name: sessionCookie,
		Description: "The admin UI's session, set by POST /api/v1/session. Requests that change state must also send X-Requested-With."}}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.Security == nil {
				// No @Security: the operation is public (login, probes, the inspector's
				// receiver), and the document says so rather than leaving it unsaid.
				op.Security = openapi3.NewSecurityRequirements()
				continue
			}
			for _, req := range *op.Security {
				if _, ok := req["BearerAuth"]; ok {
					op.Security.With(openapi3.SecurityRequirement{"SessionCookie": []string{}})
					break
				}
			}
			// `@x-auth-optional true`: the operation also answers callers that send no
			// credential (the session probe), which OpenAPI says with an empty requirement.
			if op.Extensions[authOptional] == true {
				op.Security.With(openapi3.SecurityRequirement{})
				delete(op.Extensions, authOptional)
			}
		}
	}
	return nil
}

// sharedResponse is an error that code shared by many handlers answers, documented once under
// components/responses.
type sharedResponse struct {
	name, description string
	applies           func(method string, op *openapi3.Operation) bool
}

var sharedErrors = map[string]sharedResponse{
	"400": {"BadRequest", "The body is not a single JSON object.", hasJSONBody},
	"401": {"Unauthorized", "No valid bearer token or session cookie.", authenticated},
	"403": {"Forbidden", "A state-changing request authenticated by the session cookie did not send X-Requested-With from the same origin.",
		func(method string, op *openapi3.Operation) bool {
			return authenticated(method, op) && !safeMethod(method)
		}},
	"413": {"TooLarge", "The body is larger than 1 MiB.", hasJSONBody},
	"429": {"TooManyFailedSignIns", "Too many failed sign-ins from this address (or, for addresses that have not signed in lately, from everywhere): the bearer token was not checked; Retry-After says when to try again.", authenticated},
	"415": {"UnsupportedMediaType", "The body is not application/json.", hasJSONBody},
	"500": {"InternalError", "An unexpected failure; the details are in the server log, never in the answer.",
		func(string, *openapi3.Operation) bool { return true }},
}

// sharedResponses documents the errors that middleware and shared helpers answer, so that
// annotations need not repeat them on every handler: 401 and 403 from the authenticator, 400,
// 413 and 415 from readInput and the body limit, 500 from the recoverer and storeProblem. An
// annotation that documents the status itself wins.
func sharedResponses(doc *openapi3.T) {
	if doc.Components.Responses == nil {
		doc.Components.Responses = openapi3.ResponseBodies{}
	}
	for _, code := range sortedKeys(sharedErrors) {
		sr := sharedErrors[code]
		// Each response its own content: examples() gives each its own example.
		problem := openapi3.NewContentWithSchemaRef(&openapi3.SchemaRef{Ref: "#/components/schemas/Problem"}, []string{problemMediaType})
		used := false
		for _, path := range doc.Paths.Keys() {
			item := doc.Paths.Value(path)
			for method, op := range item.Operations() {
				if op.Responses == nil || op.Responses.Value(code) != nil || !sr.applies(method, op) {
					continue
				}
				op.Responses.Set(code, &openapi3.ResponseRef{Ref: "#/components/responses/" + sr.name})
				used = true
			}
		}
		if used {
			desc := sr.description
			doc.Components.Responses[sr.name] = &openapi3.ResponseRef{Value: &openapi3.Response{Description: &desc, Content: problem}}
		}
	}
}

func authenticated(_ string, op *openapi3.Operation) bool {
	return op.Security != nil && len(*op.Security) > 0
}

func safeMethod(method string) bool {
	return method == "GET" || method == "HEAD" || method == "OPTIONS"
}

func hasJSONBody(_ string, op *openapi3.Operation) bool {
	return op.RequestBody != nil && op.RequestBody.Value != nil && op.RequestBody.Value.Content.Get("application/json") != nil
}
