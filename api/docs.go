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
	"swagger-ui.css":                  {swaggerFiles.FileSwaggerUICSS, "text/css; charset=utf-8"},
	"swagger-ui-bundle.js":            {swaggerFiles.FileSwaggerUIBundleJs, "text/javascript; charset=utf-8"},
	"swagger-ui-standalone-preset.js": {swaggerFiles.FileSwaggerUIStandalonePresetJs, "text/javascript; charset=utf-8"},
	"favicon-32x32.png":               {swaggerFiles.FileFavicon32x32Png, "image/png"},
	"favicon-16x16.png":               {swaggerFiles.FileFavicon16x16Png, "image/png"},
	"init.js":                         {[]byte(docsInitJS), "text/javascript; charset=utf-8"},
	"docs.css":                        {[]byte(docsCSS), "text/css; charset=utf-8"},
}

// docsPage loads only same-origin files: no inline script, so the CSP needs no 'unsafe-inline'
// for scripts.
const docsPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hookrelay API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="stylesheet" href="/docs/docs.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="/docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-ui-standalone-preset.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`

// docsInitJS points Swagger UI at this server's document. validatorUrl null keeps it from
// calling the public swagger.io validator.
const docsInitJS = `window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout"
  });
});
`

// docsCSS hides the top bar's "explore" box: this page shows one document.
const docsCSS = `html { box-sizing: border-box; overflow-y: scroll; }
*, *:before, *:after { box-sizing: inherit; }
body { margin: 0; background: #fafafa; }
.swagger-ui .topbar .download-url-wrapper { display: none; }
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
