package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/models"
)

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type   string              `json:"type" example:"urn:hookrelay:problem:validation"`
	Title  string              `json:"title" example:"Validation failed"`
	Status int                 `json:"status" example:"422"`
	Detail string              `json:"detail" example:"name: is required"`
	Errors []models.FieldError `json:"errors,omitempty"`
} // @name Problem

var problemTitles = map[int]struct{ slug, title string }{
	http.StatusBadRequest:            {"bad-request", "Bad request"},
	http.StatusUnauthorized:          {"unauthorized", "Authentication required"},
	http.StatusForbidden:             {"forbidden", "Forbidden"},
	http.StatusNotFound:              {"not-found", "Not found"},
	http.StatusMethodNotAllowed:      {"method-not-allowed", "Method not allowed"},
	http.StatusConflict:              {"conflict", "Conflict"},
	http.StatusRequestEntityTooLarge: {"too-large", "Request body too large"},
	http.StatusUnsupportedMediaType:  {"unsupported-media-type", "Unsupported media type"},
	http.StatusUnprocessableEntity:   {"validation", "Validation failed"},
	http.StatusTooManyRequests:       {"rate-limited", "Too many requests"},
	http.StatusInternalServerError:   {"internal", "Internal server error"},
	http.StatusServiceUnavailable:    {"unavailable", "Service unavailable"},
}

// problem writes an RFC 9457 response and stops the handler chain.
func problem(c *gin.Context, status int, detail string, errs ...models.FieldError) {
	t := problemTitles[status]
	if t.slug == "" {
		t.slug, t.title = "error", http.StatusText(status)
	}
	if detail == "" {
		detail = t.title
	}
	p := Problem{Type: "urn:hookrelay:problem:" + t.slug, Title: t.title, Status: status, Detail: detail, Errors: errs}
	c.Header("Content-Type", "application/problem+json")
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(status, p)
	// AbortWithStatusJSON sets application/json; keep the problem media type.
	c.Writer.Header().Set("Content-Type", "application/problem+json")
}

// storeProblem maps store errors to problems in one place: not found 404, conflict 409,
// validation 422; anything else is logged and answered 500 without internals.
func storeProblem(c *gin.Context, err error) {
	var verr *models.ValidationError
	switch {
	case errors.As(err, &verr):
		msgs := make([]string, len(verr.Errors))
		for i, e := range verr.Errors {
			msgs[i] = e.Field + ": " + e.Message
		}
		problem(c, http.StatusUnprocessableEntity, strings.Join(msgs, "; "), verr.Errors...)
	case errors.Is(err, models.ErrNotFound):
		problem(c, http.StatusNotFound, "")
	case errors.Is(err, models.ErrConflict):
		problem(c, http.StatusConflict, strings.TrimPrefix(err.Error(), models.ErrConflict.Error()+": "))
	case c.Request.Context().Err() != nil:
		problem(c, http.StatusServiceUnavailable, "the request was cancelled")
	default:
		slog.Error("request failed", "method", c.Request.Method, "path", c.FullPath(), "err", err)
		problem(c, http.StatusInternalServerError, "")
	}
}
