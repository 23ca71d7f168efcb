package client_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/hookrelay/hookrelay/client"
)

// A Go program registers a webhook, publishes an event and follows its delivery, with the
// client generated from the OpenAPI document, against a running Hookrelay. The receiver checks
// X-Webhook-Signature as any receiver should: the hex HMAC-SHA256 of the raw body, keyed with
// the webhook's secret.
func Example() {
	server, stop, err := startHookrelay()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()

	const secret = "whsec_example_receiver_secret"
	received := make(chan string, 1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		valid := hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(r.Header.Get("X-Webhook-Signature")))
		var payload struct {
			Event string `json:"event"`
			Data  struct {
				VisitorName string `json:"visitor_name"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &payload)
		select {
		case received <- fmt.Sprintf("%s from %s, signature valid: %t", payload.Event, payload.Data.VisitorName, valid):
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	api, err := client.NewClientWithResponses(server, client.WithRequestEditorFn(
		func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+adminToken)
			return nil
		}))
	if err != nil {
		log.Fatal(err)
	}

	created, err := api.CreateWebhookWithResponse(ctx, client.WebhookInput{
		Name:   ptr("Support inbox"),
		Url:    ptr(receiver.URL + "/hooks/chat"),
		Events: &[]string{"conversation.started"},
		Secret: ptr(secret),
	})
	if err != nil {
		log.Fatal(err)
	}
	if created.JSON201 == nil {
		log.Fatalf("create webhook: %d %s", created.StatusCode(), created.Body)
	}
	fmt.Println("webhook:", created.JSON201.Name, created.JSON201.Events, "has secret:", created.JSON201.HasSecret)

	// EventInput is a oneOf on event: each event type has its own input, with typed data.
	var event client.EventInput
	if err := event.FromConversationStartedInput(client.ConversationStartedInput{
		Event: client.ConversationStartedInputEventConversationStarted,
		Data: client.ConversationStartedData{
			ConversationId: 123,
			VisitorName:    ptr("John Doe"),
			VisitorEmail:   ptr("john@example.com"),
		},
		Timestamp: ptr("2025-01-15T10:30:00Z"),
	}); err != nil {
		log.Fatal(err)
	}
	published, err := api.PublishEventWithResponse(ctx, &client.PublishEventParams{IdempotencyKey: ptr("conv-123-started")}, event)
	if err != nil {
		log.Fatal(err)
	}
	if published.JSON202 == nil {
		log.Fatalf("publish: %d %s", published.StatusCode(), published.Body)
	}
	fmt.Println("published:", published.JSON202.Event, "at", published.JSON202.Timestamp, "to", published.JSON202.Deliveries, "webhook")

	select {
	case got := <-received:
		fmt.Println("receiver got:", got)
	case <-ctx.Done():
		log.Fatal("the receiver got nothing")
	}

	// The delivery is recorded once the receiver's answer is: poll the event until it is.
	for {
		got, err := api.GetEventWithResponse(ctx, published.JSON202.Id)
		if err != nil {
			log.Fatal(err)
		}
		if got.JSON200 == nil {
			log.Fatalf("get event: %d %s", got.StatusCode(), got.Body)
		}
		if got.JSON200.DeliveryCounts.Succeeded == 1 {
			d := (*got.JSON200.Deliveries)[0]
			payload, err := got.JSON200.Payload.AsConversationStartedPayload()
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println("delivery:", d.Status, "after", d.AttemptCount, "attempt, answered", *d.LastStatusCode)
			fmt.Println("payload:", payload.Event, payload.Timestamp.Format(time.RFC3339), *payload.Data.VisitorEmail, "phone:", payload.Data.VisitorPhone)
			break
		}
		select {
		case <-ctx.Done():
			log.Fatal("the delivery was not recorded as succeeded")
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Output:
	// webhook: Support inbox [conversation.started] has secret: true
	// published: conversation.started at 2025-01-15T10:30:00+00:00 to 1 webhook
	// receiver got: conversation.started from John Doe, signature valid: true
	// delivery: succeeded after 1 attempt, answered 204
	// payload: conversation.started 2025-01-15T10:30:00Z john@example.com phone: <nil>
}

func ptr[T any](v T) *T { return &v }
