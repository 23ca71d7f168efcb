package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/models"
)

// KeyStore is what the API-key and session handlers need.
type KeyStore interface {
	credentialStore
	CreateAPIKey(ctx context.Context, name string) (*models.APIKey, string, error)
	ListAPIKeys(ctx context.Context, p models.Page) ([]*models.APIKey, string, error)
	DeleteAPIKey(ctx context.Context, id string) error
	CreateSession(ctx context.Context, ttl time.Duration, credential string) (string, *models.Session, error)
	DeleteSession(ctx context.Context, token string) error
}

// credentialStore is what authenticating a request needs.
type credentialStore interface {
	FindAPIKey(ctx context.Context, token string) (*models.APIKey, error)
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
	FindSession(ctx context.Context, token string) (*models.Session, error)
}

// SessionCookie is the name of the UI's session cookie.
const SessionCookie = "hookrelay_session"

// SessionCookiePath scopes the session cookie to the API: pages of the UI need no cookie,
// and bin URLs (/inspect/), which capture whatever a browser sends, never receive it.
const SessionCookiePath = "/api/"

const sessionTTL = 7 * 24 * time.Hour

type authenticator struct {
	store       credentialStore
	adminHash   []byte
	secure      bool // cookie Secure flag: the public URL is https
	mu          sync.Mutex
	lastTouched map[string]time.Time
	limit       *signInLimiter
}

func newAuthenticator(store credentialStore, adminHash, publicURL string, limits SignInLimits) *authenticator {
	u, _ := url.Parse(publicURL)
	return &authenticator{store: store, adminHash: []byte(adminHash), secure: u != nil && u.Scheme == "https",
		lastTouched: map[string]time.Time{}, limit: newSignInLimiter(limits)}
}

// signIn checks a token as checkToken does, within the sign-in limits: it answers 429 itself
// (and reports false) when the client must wait, and counts the outcome. ok reports whether
// the caller should go on; credential is "" when the token is not valid.
func (a *authenticator) signIn(c *gin.Context, token string) (credential string, ok bool) {
	addr := clientAddr(c)
	if d := a.limit.wait(addr); d > 0 {
		tooManySignIns(c, d)
		return "", false
	}
	credential, valid := a.checkToken(c, token)
	if !valid {
		a.limit.failed(addr)
		return "", true
	}
	a.limit.succeeded(addr)
	return credential, true
}

// checkToken accepts the bootstrap admin token or an API key and returns the credential it
// matched (models.AdminCredential or the key's id). The admin comparison is on hashes, in
// constant time; API keys are found by hash.
func (a *authenticator) checkToken(c *gin.Context, token string) (string, bool) {
	if token == "" {
		return "", false
	}
	if len(a.adminHash) > 0 && subtle.ConstantTimeCompare([]byte(models.HashToken(token)), a.adminHash) == 1 {
		return models.AdminCredential(string(a.adminHash)), true
	}
	k, err := a.store.FindAPIKey(c.Request.Context(), token)
	if err != nil {
		return "", false
	}
	a.touch(c, k.ID)
	return k.ID, true
}

// sessionValid reports whether a session's credential is still in force. Sessions of a
// revoked API key are deleted with it; an admin session must match the admin token in use
// now, so restarting with a new --admin-token logs the old sessions out.
func (a *authenticator) sessionValid(ss *models.Session) bool {
	switch {
	case ss.Credential == "":
		return false // opened before sessions recorded their credential
	case strings.HasPrefix(ss.Credential, "admin:"):
		return len(a.adminHash) > 0 && ss.Credential == models.AdminCredential(string(a.adminHash))
	}
	return true
}

// touch records last use at most once a minute per key, off the request's path.
func (a *authenticator) touch(c *gin.Context, id string) {
	now := time.Now()
	a.mu.Lock()
	due := now.Sub(a.lastTouched[id]) > time.Minute
	if due {
		a.lastTouched[id] = now
	}
	a.mu.Unlock()
	if due {
		_ = a.store.TouchAPIKey(c.Request.Context(), id, now)
	}
}

// require authenticates a request by Bearer token or session cookie. Cookie-authenticated
// requests that change state must carry X-Requested-With (which a cross-site form cannot
// send without a CORS preflight we never grant) and, when present, a same-origin Origin.
func (a *authenticator) require(c *gin.Context) {
	if h := c.GetHeader("Authorization"); h != "" {
		// HTTP treats the authentication scheme name as case-insensitive.
		scheme, token, _ := strings.Cut(h, " ")
		valid := false
		if strings.EqualFold(scheme, "Bearer") {
			credential, goOn := a.signIn(c, strings.TrimSpace(token))
			if !goOn {
				return
			}
			valid = credential != ""
			if valid {
				tok := strings.TrimSpace(token)
				c.Set(credentialKey, Credential{Tags: []string{credential}, Valid: func(ctx context.Context) bool {
					return a.tokenStillValid(ctx, tok)
				}})
			}
		}
		if !valid {
			c.Header("WWW-Authenticate", `Bearer realm="hookrelay", error="invalid_token"`)
			problem(c, http.StatusUnauthorized, "the bearer token is not valid")
			return
		}
		c.Set("auth", "token")
		c.Next()
		return
	}
	if cookie, err := c.Cookie(SessionCookie); err == nil && cookie != "" {
		if ss, err := a.store.FindSession(c.Request.Context(), cookie); err == nil && a.sessionValid(ss) {
			if !safeMethod(c.Request.Method) && !sameOriginRequest(c) {
				problem(c, http.StatusForbidden, "cross-site request refused: send X-Requested-With from the same origin")
				return
			}
			c.Set("auth", "session")
			c.Set(credentialKey, Credential{Tags: []string{sessionTag(cookie), ss.Credential}, Valid: func(ctx context.Context) bool {
				ss, err := a.store.FindSession(ctx, cookie)
				if errors.Is(err, models.ErrNotFound) {
					return false
				}
				return err != nil || a.sessionValid(ss) // a failing database ends nothing
			}})
			c.Next()
			return
		}
	}
	c.Header("WWW-Authenticate", `Bearer realm="hookrelay"`)
	problem(c, http.StatusUnauthorized, "send Authorization: Bearer <token> or log in")
}

// hasValidSession reports whether the request carries a session cookie that is still in force.
func (a *authenticator) hasValidSession(c *gin.Context) bool {
	cookie, err := c.Cookie(SessionCookie)
	if err != nil || cookie == "" {
		return false
	}
	ss, err := a.store.FindSession(c.Request.Context(), cookie)
	return err == nil && a.sessionValid(ss)
}

// Credential is what a request was authenticated with, for what outlives the request (a
// WebSocket): its tags (the API key id or admin credential, and the session) and a recheck.
type Credential struct {
	Tags  []string
	Valid func(ctx context.Context) bool
}

const credentialKey = "credential"

// RequestCredential returns what the request was authenticated with.
func RequestCredential(c *gin.Context) Credential {
	cr, _ := c.Get(credentialKey)
	out, _ := cr.(Credential)
	return out
}

func sessionTag(cookie string) string { return "session:" + models.HashToken(cookie) }

// tokenStillValid rechecks a bearer token: the admin token cannot change while this process
// runs; an API key may be revoked (on any replica).
func (a *authenticator) tokenStillValid(ctx context.Context, token string) bool {
	if len(a.adminHash) > 0 && subtle.ConstantTimeCompare([]byte(models.HashToken(token)), a.adminHash) == 1 {
		return true
	}
	_, err := a.store.FindAPIKey(ctx, token)
	return !errors.Is(err, models.ErrNotFound) // a failing database ends nothing
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func sameOriginRequest(c *gin.Context) bool {
	if c.GetHeader("X-Requested-With") == "" {
		return false
	}
	if origin := c.GetHeader("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(u.Host, c.Request.Host) {
			return false
		}
	}
	return c.GetHeader("Sec-Fetch-Site") == "" || c.GetHeader("Sec-Fetch-Site") == "same-origin"
}

// SessionInput is the login body.
type SessionInput struct {
	Token string `json:"token" example:"hr_3f9a…"`
}

// SessionStatus says whether the caller is logged in, and how.
type SessionStatus struct {
	Authenticated bool   `json:"authenticated" example:"true"`
	Method        string `json:"method" example:"session"` // "" when not authenticated
}

// createSession logs the UI in with an API token.
//
//	@Summary		Log in
//	@Description	Exchanges an API token for an HttpOnly, SameSite=Strict session cookie used by the admin UI.
//	@Tags			session
//	@Accept			json
//	@Param			body	body	SessionInput	true	"token"
//	@Success		204
//	@Failure		400	{object}	Problem
//	@Failure		401	{object}	Problem
//	@Failure		413	{object}	Problem
//	@Failure		422	{object}	Problem
//	@Failure		429	{object}	Problem	"too many failed sign-ins from this address; Retry-After says when to try again"
//	@x-problem-401		{"detail":"that token is not valid","errors":[{"field":"token","message":"not a valid token"}]}
//	@Router			/api/v1/session [post]
func (s *Server) createSession(c *gin.Context) {
	in, ok := readInput[SessionInput](c, false)
	if !ok {
		return
	}
	if in.Token == "" {
		invalid(c, "token", "is required")
		return
	}
	credential, goOn := s.auth.signIn(c, in.Token)
	if !goOn {
		return
	}
	if credential == "" {
		problem(c, http.StatusUnauthorized, "that token is not valid", models.FieldError{Field: "token", Message: "not a valid token"})
		return
	}
	value, _, err := s.keys.CreateSession(c.Request.Context(), sessionTTL, credential)
	if errors.Is(err, models.ErrNotFound) {
		problem(c, http.StatusUnauthorized, "that token was just revoked", models.FieldError{Field: "token", Message: "not a valid token"})
		return
	}
	if err != nil {
		storeProblem(c, err)
		return
	}
	clearRootSessionCookie(c, s.auth.secure)
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: value, Path: SessionCookiePath, HttpOnly: true,
		Secure: s.auth.secure, SameSite: http.SameSiteStrictMode, MaxAge: int(sessionTTL.Seconds())})
	c.Status(http.StatusNoContent)
}

// getSession tells whether the caller is authenticated. It is the admin UI's probe on every
// load, so a caller that sends no credential (or a session cookie that has ended) is told
// "not logged in" with a 200 rather than a 401, which browsers log as an error. A bearer token
// that is sent and wrong is still a 401, counted like any failed sign-in.
//
//	@Summary		Current session
//	@Description	Answers `{"authenticated": false}` when the request carries no credential, or a session cookie that is no longer valid; with a valid bearer token or session cookie, `authenticated` is true and `method` says which. A wrong bearer token is answered 401.
//	@Tags			session
//	@Produce		json
//	@Security		BearerAuth
//	@x-auth-optional	true
//	@Success		200	{object}	SessionStatus
//	@Failure		401	{object}	Problem
//	@Router			/api/v1/session [get]
func (s *Server) getSession(c *gin.Context) {
	if c.GetHeader("Authorization") == "" && !s.auth.hasValidSession(c) {
		c.JSON(http.StatusOK, SessionStatus{Authenticated: false})
		return
	}
	s.auth.require(c)
	if c.IsAborted() {
		return
	}
	c.JSON(http.StatusOK, SessionStatus{Authenticated: true, Method: c.GetString("auth")})
}

// deleteSession logs out.
//
//	@Summary	Log out
//	@Tags		session
//	@Security	BearerAuth
//	@Success	204
//	@Failure	401	{object}	Problem
//	@Failure	403	{object}	Problem
//	@Router		/api/v1/session [delete]
func (s *Server) deleteSession(c *gin.Context) {
	if cookie, err := c.Cookie(SessionCookie); err == nil {
		if err := s.keys.DeleteSession(c.Request.Context(), cookie); err != nil && !errors.Is(err, models.ErrNotFound) {
			storeProblem(c, err)
			return
		}
		s.credentialEnded(sessionTag(cookie))
	}
	clearRootSessionCookie(c, s.auth.secure)
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: "", Path: SessionCookiePath, HttpOnly: true,
		Secure: s.auth.secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	c.Status(http.StatusNoContent)
}

// clearRootSessionCookie expires a session cookie that an earlier version set on Path=/,
// which browsers would otherwise keep sending to /inspect/ until it expired.
func clearRootSessionCookie(c *gin.Context, secure bool) {
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", HttpOnly: true,
		Secure: secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// APIKey is an API token as listed: never the token itself.
type APIKey struct {
	ID         string     `json:"id" example:"key_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	Name       string     `json:"name" example:"chat backend"`
	Prefix     string     `json:"prefix" example:"hr_3f9a1c2"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	Token      string     `json:"token,omitempty" example:"hr_3f9a…"`
} // @name APIKey

// APIKeyInput creates an API key.
type APIKeyInput struct {
	Name string `json:"name" example:"chat backend"`
}

func apiKeyOut(k *models.APIKey) APIKey {
	return APIKey{ID: k.ID, Name: k.Name, Prefix: k.Prefix, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt}
}

// listAPIKeys lists API keys (prefix only).
//
//	@Summary	List API keys
//	@Tags		api-keys
//	@Produce	json
//	@Security	BearerAuth
//	@Param		limit	query		int		false	"page size (1-200)"	default(50)
//	@Param		cursor	query		string	false	"next_cursor of the previous page"
//	@Success	200		{object}	List[APIKey]
//	@Failure	400		{object}	Problem
//	@Failure	401		{object}	Problem
//	@Router		/api/v1/api-keys [get]
func (s *Server) listAPIKeys(c *gin.Context) {
	p, ok := page(c)
	if !ok {
		return
	}
	keys, next, err := s.keys.ListAPIKeys(c.Request.Context(), p)
	if err != nil {
		storeProblem(c, err)
		return
	}
	out := List[APIKey]{Data: make([]APIKey, 0, len(keys)), NextCursor: cursor(next)}
	for _, k := range keys {
		out.Data = append(out.Data, apiKeyOut(k))
	}
	c.JSON(http.StatusOK, out)
}

// createAPIKey creates an API key; the token is in this response only.
//
//	@Summary	Create an API key
//	@Tags		api-keys
//	@Accept		json
//	@Produce	json
//	@Security	BearerAuth
//	@Param		body	body		APIKeyInput	true	"name"
//	@Success	201		{object}	APIKey
//	@Failure	400		{object}	Problem
//	@Failure	401		{object}	Problem
//	@Failure	413		{object}	Problem
//	@Failure	422		{object}	Problem
//	@Router		/api/v1/api-keys [post]
func (s *Server) createAPIKey(c *gin.Context) {
	in, ok := readInput[APIKeyInput](c, false)
	if !ok {
		return
	}
	name := strings.TrimSpace(in.Name)
	if name == "" || len([]rune(name)) > 100 {
		invalid(c, "name", "must be 1 to 100 characters")
		return
	}
	k, token, err := s.keys.CreateAPIKey(c.Request.Context(), name)
	if err != nil {
		storeProblem(c, err)
		return
	}
	out := apiKeyOut(k)
	out.Token = token
	c.JSON(http.StatusCreated, out)
}

// deleteAPIKey revokes an API key.
//
//	@Summary		Revoke an API key
//	@Description	The token stops working at once, and the admin UI sessions opened with it end.
//	@Tags			api-keys
//	@Security		BearerAuth
//	@Param			id	path	string	true	"API key id"
//	@Success		204
//	@Failure		401	{object}	Problem
//	@Failure		404	{object}	Problem
//	@Router			/api/v1/api-keys/{id} [delete]
func (s *Server) deleteAPIKey(c *gin.Context) {
	if err := s.keys.DeleteAPIKey(c.Request.Context(), c.Param("id")); err != nil {
		storeProblem(c, err)
		return
	}
	s.credentialEnded(c.Param("id"))
	c.Status(http.StatusNoContent)
}

// credentialEnded tells what outlives requests (the inspector's sockets) that a credential
// ended here; other replicas notice at their next recheck.
func (s *Server) credentialEnded(tag string) {
	if s.cfg.CredentialEnded != nil {
		s.cfg.CredentialEnded(tag)
	}
}
