package api_test

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/openapi"
)

// undocumentedRoutes are served but deliberately left out of the OpenAPI document.
var undocumentedRoutes = map[string]string{
	"GET /docs/{asset}": "the docs page's own scripts, styles and icons: static files, not API",
	"GET /metrics":      "Prometheus exposition format, described by Prometheus, not by this API",
}

// ginPath turns Gin's ":id" and "*path" into OpenAPI's "{id}" and "{path}".
var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

func ginPath(p string) string { return ginParam.ReplaceAllString(p, "{$1}") }

func loadDocument(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapi.JSON)
	if err != nil {
		t.Fatalf("load openapi/openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi/openapi.json is not valid OpenAPI 3: %v", err)
	}
	return doc
}

func TestEveryRouteIsDocumentedAndEveryDocumentedRouteExists(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	served := map[string]bool{}
	for _, r := range e.router.Routes() {
		served[r.Method+" "+ginPath(r.Path)] = true
	}
	documented := map[string]bool{}
	for path, item := range loadDocument(t).Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}

	var missing, phantom, staleExemptions []string
	for route := range served {
		if !documented[route] && undocumentedRoutes[route] == "" {
			missing = append(missing, route)
		}
	}
	for route := range documented {
		if !served[route] {
			phantom = append(phantom, route)
		}
		if undocumentedRoutes[route] != "" {
			staleExemptions = append(staleExemptions, route)
		}
	}
	for route := range undocumentedRoutes {
		if !served[route] {
			staleExemptions = append(staleExemptions, route)
		}
	}
	sort.Strings(missing)
	sort.Strings(phantom)
	sort.Strings(staleExemptions)
	if len(missing) > 0 {
		t.Errorf("routes served but missing from openapi/openapi.json (annotate the handler with @Router, then run make openapi):\n  %s",
			strings.Join(missing, "\n  "))
	}
	if len(phantom) > 0 {
		t.Errorf("operations in openapi/openapi.json that no route serves (fix the @Router line, then run make openapi):\n  %s",
			strings.Join(phantom, "\n  "))
	}
	if len(staleExemptions) > 0 {
		t.Errorf("undocumentedRoutes lists routes that are documented or no longer served: %v", staleExemptions)
	}
	if len(served) < 20 {
		t.Fatalf("only %d routes registered: the router under test is not the whole API", len(served))
	}
}

func TestOpenAPIDocumentNamesThePublicURLAsItsServer(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	r := e.do(req{method: "GET", path: "/openapi.json", noAuth: true})
	if r.status != http.StatusOK {
		t.Fatalf("GET /openapi.json: %s", r)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.body)
	if err != nil {
		t.Fatalf("served document does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("served document is invalid: %v", err)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != e.publicURL {
		t.Errorf("servers = %v, want exactly %q", serverURLs(doc), e.publicURL)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi = %q, want an OpenAPI 3 document", doc.OpenAPI)
	}
	embedded := loadDocument(t)
	if got, want := len(doc.Paths.Map()), len(embedded.Paths.Map()); got != want {
		t.Errorf("served document has %d paths, the embedded one %d", got, want)
	}
}

func serverURLs(doc *openapi3.T) []string {
	var out []string
	for _, s := range doc.Servers {
		out = append(out, s.URL)
	}
	return out
}

var assetRef = regexp.MustCompile(`(?:src|href)="(/[^"]+)"`)

func TestDocsPageLoadsOnlyItsOwnAssets(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	page := e.do(req{method: "GET", path: "/docs", noAuth: true})
	if page.status != http.StatusOK || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs: %d %s", page.status, page.header.Get("Content-Type"))
	}
	csp := page.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("docs CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("docs CSP %q allows unsafe sources", csp)
	}
	if strings.Contains(string(page.body), "<script>") || strings.Contains(string(page.body), "http") {
		t.Errorf("docs page has an inline script or an absolute URL:\n%s", page.body)
	}
	refs := assetRef.FindAllStringSubmatch(string(page.body), -1)
	if len(refs) < 4 {
		t.Fatalf("docs page references %d assets, want the Swagger UI bundle, preset, initializer and styles", len(refs))
	}
	wantTypes := map[string]string{".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
	for _, m := range refs {
		path := m[1]
		r := e.do(req{method: "GET", path: path, noAuth: true})
		if r.status != http.StatusOK {
			t.Errorf("GET %s: %d", path, r.status)
			continue
		}
		ext := path[strings.LastIndex(path, "."):]
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, wantTypes[ext]) {
			t.Errorf("GET %s: Content-Type %q, want %s", path, ct, wantTypes[ext])
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no X-Content-Type-Options: nosniff", path)
		}
	}
	init := e.do(req{method: "GET", path: "/docs/init.js", noAuth: true})
	if !strings.Contains(string(init.body), `"/openapi.json"`) || !strings.Contains(string(init.body), "validatorUrl: null") {
		t.Errorf("initializer does not load /openapi.json without the online validator:\n%s", init.body)
	}
	if r := e.do(req{method: "GET", path: "/docs/index.html", noAuth: true}); r.status != http.StatusNotFound {
		t.Errorf("GET /docs/index.html (swaggo's demo page) = %d, want 404", r.status)
	}
}

func TestDocumentedSessionCookieIsTheOneTheServerSets(t *testing.T) {
	doc := loadDocument(t)
	scheme := doc.Components.SecuritySchemes["SessionCookie"]
	if scheme == nil || scheme.Value == nil {
		t.Fatal("the document has no SessionCookie security scheme")
	}
	if scheme.Value.In != "cookie" || scheme.Value.Name != api.SessionCookie {
		t.Errorf("SessionCookie scheme is %s %q, want cookie %q", scheme.Value.In, scheme.Value.Name, api.SessionCookie)
	}
}

func TestEveryErrorResponseIsAProblemDocument(t *testing.T) {
	doc := loadDocument(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for code, resp := range op.Responses.Map() {
				if code < "400" || code == "default" || resp.Value == nil {
					continue
				}
				var types []string
				for mt := range resp.Value.Content {
					types = append(types, mt)
				}
				if !slices.Equal(types, []string{"application/problem+json"}) {
					t.Errorf("%s %s %s: content %v, want only application/problem+json", method, path, code, types)
				}
			}
		}
	}
}
