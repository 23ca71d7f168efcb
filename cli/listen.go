package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// defaultBinName names the bin listen reuses when no --bin is given.
const defaultBinName = "hookrelay listen"

// bin is the part of the API's Bin that listen uses.
type bin struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	URL       string  `json:"url"`
	HasSecret bool    `json:"has_secret"`
	WebhookID *string `json:"webhook_id"`
}

// listen streams a bin's captures to a local URL, each once and in arrival order, until
// Ctrl-C.
func listen(ctx context.Context, env Env, args []string) int {
	fs := newFlags(env, "listen", "listen --forward-to URL [--bin ID | --name NAME] [--webhook ID | --secret S]")
	sf := addServerFlags(fs, env)
	forwardTo := fs.String("forward-to", "", "local URL each captured request is sent to (required), e.g. http://localhost:3000/hooks")
	binID := fs.String("bin", "", "bin to stream (default: the bin named --name, created when missing)")
	name := fs.String("name", defaultBinName, "name of the bin to reuse or create when no --bin is given")
	webhookID := fs.String("webhook", "", "link the bin to this webhook, so its signatures are verified with the webhook's secret")
	secret := fs.String("secret", "", "verify the bin's captures with this secret")
	timeout := fs.Duration("timeout", 30*time.Second, "how long one forwarded request may take")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	target, msg := checkForwardTo(*forwardTo)
	switch {
	case msg != "":
		fmt.Fprintln(env.Stderr, "hookrelay listen: --forward-to", msg)
		return exitUsage
	case *webhookID != "" && *secret != "":
		fmt.Fprintln(env.Stderr, "hookrelay listen: give either --webhook or --secret, not both")
		return exitUsage
	case fs.NArg() > 0:
		fmt.Fprintf(env.Stderr, "hookrelay listen: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	api, ok := sf.client(env)
	if !ok {
		return exitUsage
	}
	b, err := setUpBin(ctx, api, *binID, *name, *webhookID, *secret)
	if ctx.Err() != nil {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(env.Stderr, "hookrelay listen:", err)
		return exitFail
	}
	s := newSession(api, b.ID, target, *timeout, env)
	// Said once the socket is open: from then on, nothing sent to the bin is missed.
	s.ready = func() { printReady(env, b, target) }
	if err := s.run(ctx); err != nil {
		fmt.Fprintln(env.Stderr, "hookrelay listen:", err)
		return exitFail
	}
	fmt.Fprintln(env.Stderr, "hookrelay listen: stopped")
	return exitOK
}

func checkForwardTo(raw string) (*url.URL, string) {
	if raw == "" {
		return nil, "is required, e.g. --forward-to http://localhost:3000/hooks"
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "must be an http:// or https:// URL, e.g. http://localhost:3000/hooks"
	}
	return u, ""
}

// setUpBin finds or creates the bin, then links it to the webhook or sets its secret.
func setUpBin(ctx context.Context, api *apiClient, id, name, webhookID, secret string) (*bin, error) {
	b := &bin{}
	var err error
	switch {
	case id != "":
		err = api.do(ctx, http.MethodGet, "/api/v1/inspector/bins/"+url.PathEscape(id), nil, b)
		if isStatus(err, http.StatusNotFound) {
			return nil, fmt.Errorf("--bin: no bin has the id %q", id)
		}
	default:
		b, err = findBin(ctx, api, name)
		if err == nil && b == nil {
			b = &bin{}
			err = api.do(ctx, http.MethodPost, "/api/v1/inspector/bins", map[string]any{"name": name}, b)
		}
	}
	if err != nil {
		return nil, err
	}
	var patch map[string]any
	switch {
	case webhookID != "":
		patch = map[string]any{"webhook_id": webhookID}
	case secret != "":
		patch = map[string]any{"secret": secret}
	default:
		return b, nil
	}
	err = api.do(ctx, http.MethodPatch, "/api/v1/inspector/bins/"+url.PathEscape(b.ID), patch, b)
	if isStatus(err, http.StatusUnprocessableEntity) {
		return nil, fmt.Errorf("could not set the bin's verification: %w", err)
	}
	return b, err
}

// findBin returns the newest bin with this name, or nil.
func findBin(ctx context.Context, api *apiClient, name string) (*bin, error) {
	cursor := ""
	for {
		var page list[bin]
		if err := api.do(ctx, http.MethodGet, pagePath("/api/v1/inspector/bins", 200, cursor), nil, &page); err != nil {
			return nil, err
		}
		for i := range page.Data {
			if page.Data[i].Name == name {
				return &page.Data[i], nil
			}
		}
		if page.NextCursor == nil {
			return nil, nil
		}
		cursor = *page.NextCursor
	}
}

func printReady(env Env, b *bin, target *url.URL) {
	verifies := "nothing (pass --webhook ID or --secret S to check signatures)"
	switch {
	case b.WebhookID != nil:
		verifies = "the secret of webhook " + *b.WebhookID
	case b.HasSecret:
		verifies = "the bin's own secret"
	}
	fmt.Fprintf(env.Stderr, "hookrelay listen: bin %s (%s)\n", b.ID, b.Name)
	fmt.Fprintf(env.Stderr, "  send webhooks to: %s\n", b.URL)
	fmt.Fprintf(env.Stderr, "  forwarding to:    %s\n", target)
	fmt.Fprintf(env.Stderr, "  verifying with:   %s\n", verifies)
	fmt.Fprintln(env.Stderr, "  Ctrl-C to stop")
}
