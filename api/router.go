// Package api is Hookrelay's HTTP surface: the JSON API under /api/v1, health checks, and the
// embedded admin UI. One file per resource; each declares the narrow store interface it needs.
package api

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/tracing"
)

// Dispatcher is what the API needs from the delivery engine.
type Dispatcher interface {
	SendTest(ctx context.Context, wh *models.Webhook, eventType string) (*models.Attempt, error)
}

// Store is everything the API's handlers need from storage. Each resource's file declares
// its own part, and its handlers reach storage only through that part.
type Store interface {
	WebhookStore
	EventStore
	BatchStore
	DeliveryStore
	ReplayStore
	KeyStore
	Ping(ctx context.Context) error
}

// Config wires the API.
type Config struct {
	Store          Store
	Dispatcher     Dispatcher
	AdminTokenHash string // SHA-256 hex of the bootstrap admin token
	PublicURL      string
	AllowHTTP      bool
	AllowPrivate   bool
	// AutoDisableAfter is how long a webhook may fail before maintenance disables it (0
	// never); webhooks show the date it gives.
	AutoDisableAfter time.Duration
	UI               fs.FS // built admin UI; nil serves a placeholder
	Logger           *slog.Logger
	Version          string
	// Settings are the delivery and retention settings GET /api/v1/settings reports.
	Settings ServerSettings
	// Extra registers routes owned by other packages (inspector, metrics, docs).
	Extra []func(r *gin.Engine, authed *gin.RouterGroup)
	// Replays runs the replay jobs the API creates.
	Replays ReplayRunner
	// CredentialEnded is told the tag of a credential that ended (a logout, a revoked API
	// key), so sockets opened with it close; optional.
	CredentialEnded func(tag string)
	// TrustedProxies are the addresses or CIDRs of reverse proxies whose X-Forwarded-For names
	// the client; empty trusts none.
	TrustedProxies []string
	// SignInLimits bound failed sign-ins per client address and in total (defaults if zero).
	SignInLimits SignInLimits
	// Metrics is told about published events; optional.
	Metrics PublishObserver
	// Changes is the admin change stream: told what writes changed, and serving
	// GET /api/v1/changes; optional.
	Changes ChangeFeed
	// Tracer starts the publish and enqueue spans; nil traces nothing.
	Tracer *tracing.Tracer
}

// PublishObserver is told about each newly published event (Prometheus metrics implement it).
type PublishObserver interface {
	Published(eventType string, deliveries int)
}

// Server holds the handlers' dependencies.
type Server struct {
	cfg        Config
	webhooks   WebhookStore
	events     EventStore
	batches    BatchStore
	deliveries DeliveryStore
	replays    ReplayStore
	keys       KeyStore
	db         interface {
		Ping(ctx context.Context) error
	}
	auth *authenticator
	ui   fs.FS
}

// New builds the router.
func New(cfg Config) *gin.Engine {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{cfg: cfg, webhooks: cfg.Store, events: cfg.Store, batches: cfg.Store, deliveries: cfg.Store,
		replays: cfg.Store, keys: cfg.Store, db: cfg.Store, auth: newAuthenticator(cfg.Store, cfg.AdminTokenHash, cfg.PublicURL, cfg.SignInLimits), ui: cfg.UI}
	r := gin.New()
	// Only the named proxies may say who the client is (X-Forwarded-For); by default none, so
	// nobody can pick the address that sign-in limits are kept for.
	if err := r.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		cfg.Logger.Error("ignoring --trusted-proxies", "err", err)
		_ = r.SetTrustedProxies(nil)
	}
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.Use(s.recoverer, s.logRequests, noSniff, limitBody)
	r.NoRoute(s.noRoute)
	r.NoMethod(func(c *gin.Context) { problem(c, http.StatusMethodNotAllowed, "") })

	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	s.docsRoutes(r)

	v1 := r.Group("/api/v1")
	v1.POST("/session", s.createSession)
	// The session probe authenticates by itself: without a credential it answers "not logged in".
	v1.GET("/session", s.getSession)
	authed := v1.Group("", s.auth.require, s.noteChanges)
	authed.GET("/changes", s.changesSocket)
	authed.DELETE("/session", s.deleteSession)

	authed.GET("/webhooks", s.listWebhooks)
	authed.POST("/webhooks", s.createWebhook)
	authed.GET("/webhooks/:id", s.getWebhook)
	authed.PATCH("/webhooks/:id", s.updateWebhook)
	authed.DELETE("/webhooks/:id", s.deleteWebhook)
	authed.POST("/webhooks/:id/test", s.testWebhook)
	authed.GET("/webhooks/:id/secret", s.revealSecret)
	authed.POST("/webhooks/:id/secret/rotate", s.rotateSecret)
	authed.POST("/webhooks/:id/secret/rotation", s.startSecretRotation)
	authed.POST("/webhooks/:id/secret/rotation/activate", s.activateSecretRotation)
	authed.DELETE("/webhooks/:id/secret/rotation", s.cancelSecretRotation)
	authed.POST("/webhooks/:id/replay", s.replayWebhook)
	authed.POST("/webhooks/:id/replay/preview", s.previewReplay)
	authed.GET("/webhooks/:id/replays", s.listReplays)
	authed.GET("/replays/:id", s.getReplay)

	authed.POST("/events", s.publishEvent)
	authed.POST("/events/batch", s.publishEventBatch)
	authed.GET("/events", s.listEvents)
	authed.GET("/events/:id", s.getEvent)
	authed.GET("/event-types", s.listEventTypes)

	authed.GET("/deliveries", s.listDeliveries)
	authed.GET("/deliveries/:id", s.getDelivery)
	authed.POST("/deliveries/:id/retry", s.retryDelivery)

	authed.GET("/settings", s.getSettings)

	authed.GET("/api-keys", s.listAPIKeys)
	authed.POST("/api-keys", s.createAPIKey)
	authed.DELETE("/api-keys/:id", s.deleteAPIKey)

	for _, extra := range cfg.Extra {
		extra(r, authed)
	}
	return r
}

// noSniff stops browsers from guessing a media type other than the one declared, so no
// response (a JSON string with markup in it, say) can be run as HTML or script.
func noSniff(c *gin.Context) {
	c.Header("X-Content-Type-Options", "nosniff")
	c.Next()
}

// limitBody bounds every request body; readers see *http.MaxBytesError past the limit.
// Routes with other limits (the inspector) replace the reader themselves.
func limitBody(c *gin.Context) {
	// The inspector's receiver applies its own limit and records oversized requests.
	if c.Request.Body != nil && !strings.HasPrefix(c.Request.URL.Path, "/inspect/") {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	}
	c.Next()
}

func (s *Server) recoverer(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			s.cfg.Logger.Error("panic serving request", "path", c.Request.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				problem(c, http.StatusInternalServerError, "")
			}
		}
	}()
	c.Next()
}

func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	if c.Writer.Status() >= 500 {
		s.cfg.Logger.Warn("request", "method", c.Request.Method, "path", c.Request.URL.Path,
			"status", c.Writer.Status(), "duration", time.Since(start))
	} else if s.cfg.Logger.Enabled(c.Request.Context(), slog.LevelDebug) {
		// Asked first: boxing the attributes costs allocations on every request even when
		// the handler would drop the record.
		s.cfg.Logger.Debug("request", "method", c.Request.Method, "path", c.Request.URL.Path,
			"status", c.Writer.Status(), "duration", time.Since(start))
	}
}

// healthz answers while the process is up.
//
//	@Summary	Liveness
//	@Tags		health
//	@Produce	json
//	@Success	200	{object}	map[string]string
//	@x-response-examples	{"200": {"status": "ok"}}
//	@Router		/healthz [get]
func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz answers 200 when the database is reachable.
//
//	@Summary	Readiness
//	@Tags		health
//	@Produce	json
//	@Success	200	{object}	map[string]string
//	@Failure	503	{object}	Problem
//	@x-response-examples	{"200": {"status": "ready"}}
//	@Router		/readyz [get]
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.db.Ping(ctx); err != nil {
		problem(c, http.StatusServiceUnavailable, "database unreachable")
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
