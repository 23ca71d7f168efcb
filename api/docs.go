package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/openapi"
	swaggerFiles "github.com/swaggo/files"
)

// docsAssets are the Swagger UI files /docs serves, from swaggo/files (compiled into the
// binary: the docs work offline and load nothing from a CDN). Only what the page uses is
// exposed; the package's own index.html and initializer would point at a demo API.
var docsAssets = map[string]struct {
	body        []byte
	contentType string
}{
	"swagger-ui.css":       {swaggerFiles.FileSwaggerUICSS, "text/css; charset=utf-8"},
	"swagger-ui-bundle.js": {swaggerFiles.FileSwaggerUIBundleJs, "text/javascript; charset=utf-8"},
	"favicon-32x32.png":    {swaggerFiles.FileFavicon32x32Png, "image/png"},
	"favicon-16x16.png":    {swaggerFiles.FileFavicon16x16Png, "image/png"},
	"init.js":              {[]byte(docsInitJS), "text/javascript; charset=utf-8"},
	"docs.css":             {[]byte(docsCSS), "text/css; charset=utf-8"},
}

// docsPage loads only same-origin files: no inline script, so the CSP needs no 'unsafe-inline'
// for scripts. Its own header leads back to the admin UI (Swagger UI's top bar, a box for
// loading other documents, is left out).
const docsPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Hookrelay API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="stylesheet" href="/docs/docs.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="/docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
<header class="docs-bar">
<a href="/" class="docs-back" data-testid="docs-back-to-ui">&larr; Admin UI</a>
<span class="docs-name">Hookrelay API</span>
<a href="/openapi.json" class="docs-raw">openapi.json</a>
</header>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`

// docsInitJS points Swagger UI at this server's document. validatorUrl null keeps it from
// calling the public swagger.io validator.
//
//   - "Try it out" is on from the start, so publishing the prefilled sample event takes two
//     clicks: open POST /api/v1/events, Execute.
//   - Requests to this origin carry X-Requested-With: a browser logged in to the admin UI sends
//     its session cookie, and the server accepts cookie-authenticated writes only with that
//     header. Only a same-origin page can add it (a cross-site one needs a CORS preflight the
//     server never grants), so this weakens nothing; requests elsewhere are left alone.
//   - The receiver tag (/inspect/{id}, 14 operations a sender calls) is collapsed once the
//     document has loaded: documented, but out of the way of the admin API.
const docsInitJS = `window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: true,
    displayRequestDuration: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor: function (req) {
      if (new URL(req.url, window.location.href).origin === window.location.origin) {
        req.headers["X-Requested-With"] = "hookrelay-docs";
      }
      return req;
    },
    onComplete: function () {
      window.ui.layoutActions.show(["operations-tag", "receiver"], false);
    }
  });
});
`

// docsCSS styles the page's own header and follows the system's colour scheme: Swagger UI has
// no dark theme, so in dark mode its light one is inverted (hue kept, so the method colours
// still read as GET blue, POST green, DELETE red); images and the already dark code blocks are
// inverted back.
const docsCSS = `html { box-sizing: border-box; overflow-y: scroll; }
*, *:before, *:after { box-sizing: inherit; }
body { margin: 0; background: #fafafa; color: #1f2430; font-family: system-ui, sans-serif; }
.docs-bar { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; padding: 0.6rem 1.25rem;
  border-bottom: 1px solid #d8dce3; background: #fff; font-size: 0.95rem; }
.docs-bar a { color: #1d4ed8; text-decoration: none; }
.docs-bar a:hover, .docs-bar a:focus-visible { text-decoration: underline; }
.docs-name { font-weight: 600; flex: 1; }
.swagger-ui .info { margin: 1.5rem 0; }
@media (prefers-color-scheme: dark) {
  body { background: #1e1e1e; color: #e6e8ee; }
  .docs-bar { background: #181b22; border-bottom-color: #2b303b; }
  .docs-bar a { color: #8ab4ff; }
  #swagger-ui { filter: invert(0.9) hue-rotate(180deg); background: #fafafa; }
  #swagger-ui img, #swagger-ui .highlight-code { filter: invert(1) hue-rotate(180deg); }
}
`

// docsCSP is the docs page's policy: its scripts, styles and images are all served from here
// (Swagger UI's icons are data: URIs, and its React views set styles through the CSSOM, which
// style-src does not govern); "Try it out" calls this origin and the public URL.
func docsCSP(publicURL string) string {
	connect := "'self'"
	if u, err := url.Parse(publicURL); err == nil && u.Scheme != "" && u.Host != "" {
		connect += " " + u.Scheme + "://" + u.Host
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
		"connect-src " + connect + "; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// servedDocument is the embedded OpenAPI 3 document with the relative server replaced by the
// public URL, so "Try it out" and generated clients reach this server however it is deployed.
func servedDocument(doc []byte, publicURL string) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, fmt.Errorf("read embedded OpenAPI document: %w", err)
	}
	servers, err := json.Marshal([]map[string]string{{"url": publicURL, "description": "This Hookrelay server"}})
	if err != nil {
		return nil, fmt.Errorf("encode servers: %w", err)
	}
	top["servers"] = servers
	out, err := json.Marshal(top)
	if err != nil {
		return nil, fmt.Errorf("encode OpenAPI document: %w", err)
	}
	return out, nil
}

// docsRoutes serves GET /openapi.json and the interactive docs at GET /docs.
func (s *Server) docsRoutes(r *gin.Engine) {
	doc, err := servedDocument(openapi.JSON, s.cfg.PublicURL)
	if err != nil {
		// The document is generated and embedded at build time; tests load it, so this only
		// happens to a binary built from a broken checkout.
		s.cfg.Logger.Error("OpenAPI document unavailable", "err", err)
	}
	csp := docsCSP(s.cfg.PublicURL)

	r.GET("/openapi.json", func(c *gin.Context) { s.openapiJSON(c, doc) })
	r.GET("/docs", func(c *gin.Context) { s.docsIndex(c, csp) })
	r.GET("/docs/*asset", func(c *gin.Context) { s.docsAsset(c, csp) })
}

// openapiJSON serves the API's OpenAPI 3 document, with this server's public URL as its server.
//
//	@Summary		OpenAPI document
//	@Description	The OpenAPI 3 document of this API, generated from the code, with this server's public URL in `servers`.
//	@Tags			docs
//	@Produce		json
//	@Success		200	{object}	map[string]any	"OpenAPI 3 document"
//	@Failure		500	{object}	Problem
//	@x-response-examples	{"200": {"openapi": "3.0.3", "info": {"title": "Hookrelay API", "version": "1.0.0"}, "servers": [{"url": "https://hooks.example.com", "description": "This Hookrelay server"}], "paths": {}}}
//	@Router			/openapi.json [get]
func (s *Server) openapiJSON(c *gin.Context, doc []byte) {
	if doc == nil {
		problem(c, http.StatusInternalServerError, "the OpenAPI document was not built into this binary")
		return
	}
	c.Header("Cache-Control", "no-cache")
	c.Header("Access-Control-Allow-Origin", "*")
	c.Data(http.StatusOK, "application/json", doc)
}

// docsIndex serves the interactive API docs page.
//
//	@Summary		Interactive API docs
//	@Description	Swagger UI for this API, served from files compiled into the binary.
//	@Tags			docs
//	@Produce		html
//	@Success		200	{string}	string	"HTML page"
//	@x-response-examples	{"200": "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Hookrelay API</title>"}
//	@Router			/docs [get]
func (s *Server) docsIndex(c *gin.Context, csp string) {
	docsHeaders(c, csp)
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(docsPage))
}

// docsAsset serves one of the docs page's scripts, styles or icons. These static files are not
// part of the API, so the OpenAPI document leaves them out (the route test lists them as exempt).
func (s *Server) docsAsset(c *gin.Context, csp string) {
	name := c.Param("asset")
	if len(name) > 0 && name[0] == '/' {
		name = name[1:]
	}
	if name == "" {
		c.Redirect(http.StatusMovedPermanently, "/docs")
		return
	}
	a, ok := docsAssets[name]
	if !ok {
		problem(c, http.StatusNotFound, "no such docs file: "+name)
		return
	}
	docsHeaders(c, csp)
	// Names are not content-hashed, but they change only with the binary.
	c.Header("Cache-Control", "public, max-age=3600")
	c.Data(http.StatusOK, a.contentType, a.body)
}

func docsHeaders(c *gin.Context, csp string) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}
