package api

import (
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"
)

// cspBefore and cspAfter surround connect-src, which names the page's own socket origins: the
// UI loads nothing from a CDN and works offline, and a script injected into it can reach no
// other host, over fetch or WebSocket ("ws: wss:" would allow any).
const (
	cspBefore = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"
	cspAfter  = "; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

// contentSecurityPolicy allows WebSockets to the host the browser asked for (the UI opens its
// sockets on location.host). 'self' covers ws: and wss: only in browsers that follow CSP
// level 3, hence the explicit origins. A Host that is not a plain host[:port] adds nothing, so
// it cannot smuggle a directive in.
func contentSecurityPolicy(host string) string {
	if !plainHost(host) {
		return cspBefore + cspAfter
	}
	return cspBefore + " ws://" + host + " wss://" + host + cspAfter
}

func plainHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, r := range h {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-:[]", r)
		if !ok {
			return false
		}
	}
	return true
}

func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy(c.Request.Host))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

// noRoute serves the embedded admin UI with history fallback: unknown GET paths outside the
// API get index.html so client-side routes survive a reload; everything else is a 404 problem.
func (s *Server) noRoute(c *gin.Context) {
	p := c.Request.URL.Path
	if strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/inspect/") || (c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead) {
		problem(c, http.StatusNotFound, "no such route: "+c.Request.Method+" "+p)
		return
	}
	securityHeaders(c)
	if s.ui == nil {
		c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte("Hookrelay is running; the admin UI was not built into this binary.\n"))
		return
	}
	name := strings.TrimPrefix(path.Clean(p), "/")
	if name != "" && name != "index.html" {
		if st, err := fs.Stat(s.ui, name); err == nil && !st.IsDir() {
			if strings.HasPrefix(name, "assets/") {
				// Vite puts a content hash in asset names: they never change.
				c.Header("Cache-Control", "public, max-age=31536000, immutable")
			}
			c.FileFromFS(name, http.FS(s.ui))
			return
		}
		if path.Ext(name) != "" {
			problem(c, http.StatusNotFound, "no such file: "+p)
			return
		}
	}
	index, err := fs.ReadFile(s.ui, "index.html")
	if err != nil {
		c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte("Hookrelay is running; the admin UI was not built into this binary.\n"))
		return
	}
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "text/html; charset=utf-8", index)
}
