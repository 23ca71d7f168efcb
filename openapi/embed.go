// Package openapi holds the API documents generated from the swag annotations in api/ by
// internal/openapigen (`make openapi` or `go generate ./...`): swagger.json (Swagger 2.0, as
// swag produces it, refined) and openapi.json (OpenAPI 3, what clients and tests use). The JSON
// files are never edited by hand; `make openapi-check` fails when they are stale.
package openapi

import _ "embed"

// JSON is the OpenAPI 3 document. Its server is relative ("/"); GET /openapi.json serves it
// with the absolute public URL.
//
//go:embed openapi.json
var JSON []byte
