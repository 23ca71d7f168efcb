// Package apivalidate checks real HTTP traffic against the OpenAPI document, for tests: wrap a
// test client's transport and every request it sends and every response it gets is validated
// with kin-openapi's openapi3filter, so a handler that drifts from its documentation fails the
// test that exercised it.
//
// The rules, per exchange:
//   - The response must be documented for its operation: status, media type and body schema.
//   - A request the document calls invalid (missing field, wrong type, no credentials, …) must
//     be refused with a 4xx. Tests send such requests on purpose; a 2xx or 5xx answer means the
//     document is stricter than the handler, or the handler accepts what it should not.
//   - A request under /api/ to a path or method the document does not have must not succeed.
//     (Routes are compared with the document in full by api's route test.)
package apivalidate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/hookrelay/hookrelay/openapi"
)

func init() {
	// GET /docs answers a page; kin-openapi decodes text/plain but not text/html.
	if openapi3filter.RegisteredBodyDecoder("text/html") == nil {
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	}
}

// Reporter is where failures go; *testing.T is one.
type Reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// Validator holds a loaded document and the router that finds operations in it.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	defaultOnce sync.Once
	defaultV    *Validator
	defaultErr  error
)

// Default returns the validator of the document embedded from openapi/openapi.json, loaded once.
func Default() (*Validator, error) {
	defaultOnce.Do(func() { defaultV, defaultErr = New(openapi.JSON) })
	return defaultV, defaultErr
}

// New loads an OpenAPI 3 document for validation.
func New(document []byte) (*Validator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(document)
	if err != nil {
		return nil, fmt.Errorf("load OpenAPI document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("OpenAPI document is invalid: %w", err)
	}
	// Tests call servers on random loopback ports: match operations on the path alone.
	doc.Servers = nil
	greedyRestOfPath(doc)
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route OpenAPI document: %w", err)
	}
	return &Validator{doc: doc, router: router}, nil
}

// greedyRestOfPath lets a final {path} parameter match several segments, as Gin's *path does
// for the inspector's receiver; OpenAPI has no syntax for it, kin-openapi's router has {path*}.
func greedyRestOfPath(doc *openapi3.T) {
	for _, key := range doc.Paths.Keys() {
		if rest, ok := strings.CutSuffix(key, "/{path}"); ok {
			item := doc.Paths.Value(key)
			doc.Paths.Delete(key)
			doc.Paths.Set(rest+"/{path*}", item)
		}
	}
}

// Transport wraps base (http.DefaultTransport when nil) so that every exchange is validated
// against the embedded document, reporting failures to r. It reports a document that does not
// load, too, on the first request.
func Transport(r Reporter, base http.RoundTripper) http.RoundTripper {
	v, err := Default()
	return newTransport(r, v, err, base)
}

// Transport wraps base with this validator.
func (v *Validator) Transport(r Reporter, base http.RoundTripper) http.RoundTripper {
	return newTransport(r, v, nil, base)
}

func newTransport(r Reporter, v *Validator, loadErr error, base http.RoundTripper) *transport {
	t := &transport{r: r, v: v, loadErr: loadErr, base: base}
	// A test's client may outlive it in a goroutine that is still winding down; reporting to
	// a finished test panics, so reports stop when it ends.
	if c, ok := r.(interface{ Cleanup(func()) }); ok {
		c.Cleanup(func() { t.done.Store(true) })
	}
	return t
}

type transport struct {
	r       Reporter
	v       *Validator
	loadErr error
	base    http.RoundTripper
	done    atomic.Bool
}

// CloseIdleConnections passes http.Client.CloseIdleConnections on to the wrapped transport.
func (t *transport) CloseIdleConnections() {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	if c, ok := base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *transport) errorf(format string, args ...any) {
	if !t.done.Load() {
		t.r.Helper()
		t.r.Errorf(format, args...)
	}
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.r.Helper()
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	if t.loadErr != nil {
		t.errorf("apivalidate: %v", t.loadErr)
		return base.RoundTrip(req)
	}
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("apivalidate: read request body: %w", err)
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}

	in, reqErr, routed := t.v.checkRequest(req, reqBody)

	res, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resBody, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("apivalidate: read response body: %w", err)
	}
	res.Body = io.NopCloser(bytes.NewReader(resBody))

	what := req.Method + " " + req.URL.RequestURI()
	if !routed {
		// Outside /api/ are the UI and static files, which the document leaves out; an error
		// answer is what an unknown route gets (and what a test's own panic route gives).
		if strings.HasPrefix(req.URL.Path, "/api/") && res.StatusCode < 400 {
			t.errorf("apivalidate: %s is not in the OpenAPI document (%v), yet the server answered %d: document the route", what, reqErr, res.StatusCode)
		}
		return res, nil
	}
	if reqErr != nil && (res.StatusCode < 400 || res.StatusCode >= 500) {
		t.errorf("apivalidate: %s does not match the OpenAPI document (%v), yet the server answered %d: the document and the handler disagree on what is valid", what, reqErr, res.StatusCode)
	}
	if err := t.v.checkResponse(in, res, resBody); err != nil {
		t.errorf("apivalidate: the response to %s (%d) does not match the OpenAPI document: %v\nbody: %s", what, res.StatusCode, err, excerpt(resBody))
	}
	return res, nil
}

// checkRequest validates req against its operation. routed is false when the document has no
// such operation.
func (v *Validator) checkRequest(req *http.Request, body []byte) (in *openapi3filter.RequestValidationInput, err error, routed bool) {
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return nil, err, false
	}
	// openapi3filter consumes the body it validates: give it its own copy.
	probe := req.Clone(req.Context())
	probe.Body = io.NopCloser(bytes.NewReader(body))
	in = &openapi3filter.RequestValidationInput{
		Request:    probe,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			AuthenticationFunc:  credentialsPresent,
			SkipSettingDefaults: true,
		},
	}
	return in, openapi3filter.ValidateRequest(req.Context(), in), true
}

func (v *Validator) checkResponse(in *openapi3filter.RequestValidationInput, res *http.Response, body []byte) error {
	opts := &openapi3filter.Options{IncludeResponseStatus: true}
	// A switch of protocols (WebSocket) and HEAD carry no body to check.
	if in.Request.Method == http.MethodHead || res.StatusCode == http.StatusSwitchingProtocols {
		opts.ExcludeResponseBody = true
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 res.StatusCode,
		Header:                 res.Header,
		Options:                opts,
	}
	out.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(in.Request.Context(), out)
}

// credentialsPresent checks that a request carries the credentials a security scheme names;
// whether they are right is the server's business (and a 401 must be documented).
func credentialsPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	req := in.RequestValidationInput.Request
	s := in.SecurityScheme
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		if h := req.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return nil
		}
	case s.Type == "apiKey" && s.In == "header":
		if req.Header.Get(s.Name) != "" {
			return nil
		}
	case s.Type == "apiKey" && s.In == "query":
		if req.URL.Query().Get(s.Name) != "" {
			return nil
		}
	case s.Type == "apiKey" && s.In == "cookie":
		if c, err := req.Cookie(s.Name); err == nil && c.Value != "" {
			return nil
		}
	default:
		return fmt.Errorf("security scheme %q of type %q is not understood by apivalidate", in.SecuritySchemeName, s.Type)
	}
	return errors.New("credentials missing")
}

func excerpt(b []byte) string {
	const max = 600
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
