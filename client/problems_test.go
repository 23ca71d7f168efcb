package client_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/client"
)

// Every error answer decodes into the Problem its status documents, through the generated
// client's typed fields, against a real server.
func TestProblemResponsesDecodeIntoTypedFields(t *testing.T) {
	server, stop, err := startHookrelay()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	bearer := func(token string) client.ClientOption {
		return client.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+token)
			return nil
		})
	}
	admin, err := client.NewClientWithResponses(server, bearer(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := client.NewClientWithResponses(server, bearer("hr_not_a_token"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	message := func(content string) client.EventInput {
		var in client.EventInput
		if err := in.FromMessageReceivedInput(client.MessageReceivedInput{
			Event: client.MessageReceivedInputEventMessageReceived,
			Data:  client.MessageReceivedData{MessageId: 456, ConversationId: 123, Content: content},
		}); err != nil {
			t.Fatal(err)
		}
		return in
	}
	key := &client.PublishEventParams{IdempotencyKey: ptr("msg-456")}
	if r, err := admin.PublishEventWithResponse(ctx, key, message("Hello")); err != nil || r.JSON202 == nil {
		t.Fatalf("first publish with the key: %v %v", err, r)
	}

	type answer struct {
		status  int
		problem *client.Problem
		resp    *http.Response
	}
	cases := []struct {
		name      string
		call      func() (answer, error)
		status    int
		typeSlug  string
		errFields []string
	}{
		{"401 without a valid token", func() (answer, error) {
			r, err := stranger.ListWebhooksWithResponse(ctx, nil)
			if err != nil {
				return answer{}, err
			}
			return answer{r.StatusCode(), r.ApplicationproblemJSON401, r.HTTPResponse}, nil
		}, 401, "unauthorized", nil},
		{"404 for an unknown webhook", func() (answer, error) {
			r, err := admin.GetWebhookWithResponse(ctx, "wh_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f")
			if err != nil {
				return answer{}, err
			}
			return answer{r.StatusCode(), r.ApplicationproblemJSON404, r.HTTPResponse}, nil
		}, 404, "not-found", nil},
		{"422 naming the invalid field", func() (answer, error) {
			r, err := admin.CreateWebhookWithResponse(ctx, client.WebhookInput{Name: ptr("Broken"), Url: ptr("not a url"), Events: &[]string{"message.received"}})
			if err != nil {
				return answer{}, err
			}
			return answer{r.StatusCode(), r.ApplicationproblemJSON422, r.HTTPResponse}, nil
		}, 422, "validation", []string{"url"}},
		{"409 for an Idempotency-Key reused with another body", func() (answer, error) {
			r, err := admin.PublishEventWithResponse(ctx, key, message("Another message"))
			if err != nil {
				return answer{}, err
			}
			return answer{r.StatusCode(), r.ApplicationproblemJSON409, r.HTTPResponse}, nil
		}, 409, "conflict", nil},
		{"400 for a page size out of range", func() (answer, error) {
			r, err := admin.ListEventsWithResponse(ctx, &client.ListEventsParams{Limit: ptr(0)})
			if err != nil {
				return answer{}, err
			}
			return answer{r.StatusCode(), r.ApplicationproblemJSON400, r.HTTPResponse}, nil
		}, 400, "bad-request", []string{"limit"}},
		{"413 for a body over 1 MiB", func() (answer, error) {
			r, err := admin.PublishEventWithResponse(ctx, nil, message(strings.Repeat("x", 1<<20)))
			if err != nil {
				return answer{}, err
			}
			return answer{r.StatusCode(), r.ApplicationproblemJSON413, r.HTTPResponse}, nil
		}, 413, "too-large", nil},
		{"415 for a body that is not JSON", func() (answer, error) {
			r, err := admin.PublishEventWithBodyWithResponse(ctx, nil, "text/plain", strings.NewReader("hello"))
			if err != nil {
				return answer{}, err
			}
			return answer{r.StatusCode(), r.ApplicationproblemJSON415, r.HTTPResponse}, nil
		}, 415, "unsupported-media-type", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.call()
			if err != nil {
				t.Fatal(err)
			}
			if got.status != c.status {
				t.Fatalf("status %d, want %d", got.status, c.status)
			}
			if ct := got.resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			p := got.problem
			if p == nil {
				t.Fatalf("the %d problem did not decode into its typed field", c.status)
			}
			if p.Status != c.status || p.Type != "urn:hookrelay:problem:"+c.typeSlug || p.Title == "" || p.Detail == "" {
				t.Errorf("problem %+v, want status %d and type …:%s with a title and a detail", p, c.status, c.typeSlug)
			}
			var fields []string
			if p.Errors != nil {
				for _, e := range *p.Errors {
					fields = append(fields, e.Field)
					if e.Message == "" {
						t.Errorf("field error %q has no message", e.Field)
					}
				}
			}
			for _, f := range c.errFields {
				if !slices.Contains(fields, f) {
					t.Errorf("errors name %v, want %s among them", fields, f)
				}
			}
		})
	}
}
