package delivery_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testsrv"
)

// The seed's two payloads, byte for byte, as its documentation shows them (minus the
// pretty-printing): these are the exact bodies receivers must get.
const (
	seedConversationStarted = `{"event":"conversation.started","timestamp":"2025-01-15T10:30:00+00:00","data":{` +
		`"conversation_id":123,"visitor_name":"John Doe","visitor_email":"john@example.com",` +
		`"visitor_phone":"+1234567890","visitor_ip":"192.168.1.100","current_url":"https://example.com/products",` +
		`"status":"open","created_at":"2025-01-15T10:30:00+00:00"}}`
	seedMessageReceived = `{"event":"message.received","timestamp":"2025-01-15T10:31:00+00:00","data":{` +
		`"message_id":456,"content":"Hello, I need help with my order.","is_from_admin":false,"admin_name":null,` +
		`"conversation_id":123,"visitor_name":"John Doe","visitor_email":"john@example.com",` +
		`"visitor_phone":"+1234567890","visitor_ip":"192.168.1.100","current_url":"https://example.com/products",` +
		`"status":"open","created_at":"2025-01-15T10:31:00+00:00"}}`
)

// seedPublish is what the chat application publishes for each seed payload. Keys are given
// out of order, times in other offsets and with Z, and defaults (is_from_admin, admin_name)
// are left out: the delivered bytes must still be exactly the seed's.
var seedPublish = []struct {
	event, timestamp string
	data             map[string]any
	want             string
}{
	{
		event:     "conversation.started",
		timestamp: "2025-01-15T11:30:00+01:00",
		data: map[string]any{
			"status": "open", "current_url": "https://example.com/products", "visitor_ip": "192.168.1.100",
			"visitor_phone": "+1234567890", "visitor_email": "john@example.com", "visitor_name": "John Doe",
			"conversation_id": 123, "created_at": "2025-01-15T10:30:00Z",
		},
		want: seedConversationStarted,
	},
	{
		event:     "message.received",
		timestamp: "2025-01-15T10:31:00Z",
		data: map[string]any{
			"created_at": "2025-01-15T05:31:00-05:00", "conversation_id": 123, "content": "Hello, I need help with my order.",
			"message_id": 456, "visitor_name": "John Doe", "visitor_email": "john@example.com",
			"visitor_phone": "+1234567890", "visitor_ip": "192.168.1.100", "current_url": "https://example.com/products",
			"status": "open",
		},
		want: seedMessageReceived,
	},
}

var (
	seedTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$`)
	lowerHexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

const plainSecret = "your-webhook-secret" // the seed's own example secret

// secretCase is one way a webhook can be signed.
type secretCase struct {
	name   string
	input  map[string]any // secret fields of the create request
	nodeSW string         // standard-verify.js format argument: "" (whsec_/base64) or "raw"
}

var secretCases = []secretCase{
	{name: "no secret", input: map[string]any{}},
	{name: "plain secret", input: map[string]any{"secret": plainSecret}, nodeSW: "raw"},
	{name: "whsec secret", input: map[string]any{"generate_secret": true}},
}

func TestPublishedEventsReachReceiversAsTheSeedsExactBytesAndHeaders(t *testing.T) {
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true})
	// One webhook per way of signing, all listening to both events: each event fans out to
	// all three, and every one must get the same bytes.
	receivers := make([]*testsrv.Receiver, len(secretCases))
	secrets := make([]string, len(secretCases))
	for i, sc := range secretCases {
		receivers[i] = testsrv.NewReceiver(t, nil)
		in := map[string]any{"name": sc.name, "url": receivers[i].URL + "/hook", "events": []string{"conversation.started", "message.received"}}
		for k, v := range sc.input {
			in[k] = v
		}
		secrets[i] = s.CreateWebhook(t, in).Secret
	}
	if !strings.HasPrefix(secrets[2], "whsec_") {
		t.Fatalf("generated secret %q does not start with whsec_", secrets[2])
	}
	for n, sp := range seedPublish {
		pub := s.Publish(t, sp.event, sp.data, sp.timestamp)
		if pub.Deliveries != len(secretCases) {
			t.Fatalf("%s fanned out to %d webhooks, want %d", sp.event, pub.Deliveries, len(secretCases))
		}
		for i, sc := range secretCases {
			t.Run(sp.event+"/"+sc.name, func(t *testing.T) {
				c := receivers[i].WaitFor(t, n+1, 10*time.Second)[n]
				if string(c.Body) != sp.want {
					t.Fatalf("body:\n got %s\nwant %s", c.Body, sp.want)
				}
				if c.Method != http.MethodPost || c.Path != "/hook" {
					t.Errorf("request is %s %s, want POST /hook", c.Method, c.Path)
				}
				checkHeaders(t, c, secrets[i], sp.event, pub.ID, 1, false)
				checkSignaturesWithNode(t, c, secrets[i], sc.nodeSW)
			})
		}
	}
}

func TestTestActionSendsTheSeedSampleMarkedAsATest(t *testing.T) {
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true})
	for _, sc := range secretCases {
		t.Run(sc.name, func(t *testing.T) {
			rc := testsrv.NewReceiver(t, nil)
			in := map[string]any{"name": sc.name, "url": rc.URL + "/test", "events": []string{"conversation.started", "message.received"},
				"enabled": false} // the test action works on a disabled webhook
			for k, v := range sc.input {
				in[k] = v
			}
			wh := s.CreateWebhook(t, in)
			for i, sp := range seedPublish {
				var attempt struct {
					Outcome        string `json:"outcome"`
					ResponseStatus *int   `json:"response_status"`
					DeliveryID     string `json:"delivery_id"`
				}
				s.Do(t, http.MethodPost, "/api/v1/webhooks/"+wh.ID+"/test", map[string]any{"event": sp.event}, http.StatusOK, &attempt)
				if attempt.Outcome != "succeeded" || attempt.ResponseStatus == nil || *attempt.ResponseStatus != 200 {
					t.Fatalf("test attempt = %+v, want succeeded with 200", attempt)
				}
				c := rc.WaitFor(t, i+1, 10*time.Second)[i]

				// The sample is the seed's John Doe payload with fresh timestamps.
				var env struct {
					Timestamp string `json:"timestamp"`
				}
				if err := json.Unmarshal(c.Body, &env); err != nil || !seedTimeRE.MatchString(env.Timestamp) {
					t.Fatalf("test body %s: timestamp %q not in the seed format (%v)", c.Body, env.Timestamp, err)
				}
				seedTime := map[string]string{"conversation.started": "2025-01-15T10:30:00+00:00", "message.received": "2025-01-15T10:31:00+00:00"}[sp.event]
				want := strings.ReplaceAll(sp.want, seedTime, env.Timestamp)
				if string(c.Body) != want {
					t.Fatalf("test body:\n got %s\nwant %s", c.Body, want)
				}
				d := s.Delivery(t, attempt.DeliveryID)
				if !d.Test || d.Status != "succeeded" || len(d.Attempts) != 1 {
					t.Errorf("the delivery log shows the test as %+v, want a succeeded test delivery with one attempt", d)
				}
				checkHeaders(t, c, wh.Secret, sp.event, d.EventID, 1, true)
				checkSignaturesWithNode(t, c, wh.Secret, sc.nodeSW)
			}
		})
	}
}

// checkHeaders pins the documented header set: the five of the receiver contract, then X-Webhook-Id, X-Webhook-Attempt,
// User-Agent and the Standard Webhooks headers, and nothing else but Content-Length.
func checkHeaders(t *testing.T, c testsrv.Capture, secret, event, eventID string, attempt int, test bool) {
	t.Helper()
	h := c.Header
	want := []string{"Content-Length", "Content-Type", "User-Agent", "Webhook-Id", "Webhook-Timestamp",
		"X-Webhook-Attempt", "X-Webhook-Event", "X-Webhook-Id", "X-Webhook-Timestamp"}
	if secret != "" {
		want = append(want, "Webhook-Signature", "X-Webhook-Signature")
	}
	if test {
		want = append(want, "X-Webhook-Test")
	}
	slices.Sort(want)
	var got []string
	for k := range h {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("header names:\n got %v\nwant %v", got, want)
	}
	for name, v := range h {
		if len(v) != 1 {
			t.Errorf("header %s has %d values %q, want one", name, len(v), v)
		}
	}

	if v := h.Get("Content-Type"); v != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", v)
	}
	if v := h.Get("X-Webhook-Event"); v != event {
		t.Errorf("X-Webhook-Event = %q, want %q", v, event)
	}
	ts := h.Get("X-Webhook-Timestamp")
	if !seedTimeRE.MatchString(ts) {
		t.Errorf("X-Webhook-Timestamp = %q, want the seed format 2025-01-15T10:30:00+00:00", ts)
	}
	at, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		t.Errorf("X-Webhook-Timestamp %q does not parse: %v", ts, err)
	} else if d := time.Since(at); d < -time.Minute || d > time.Minute {
		t.Errorf("X-Webhook-Timestamp %q is not the time of the attempt (now %s)", ts, time.Now().UTC())
	}
	if v := h.Get("Webhook-Timestamp"); err == nil && v != strconv.FormatInt(at.Unix(), 10) {
		t.Errorf("webhook-timestamp = %q, want %d, the unix seconds of X-Webhook-Timestamp %s", v, at.Unix(), ts)
	}
	if v := h.Get("X-Webhook-Id"); v != eventID || strings.Contains(v, ".") {
		t.Errorf("X-Webhook-Id = %q, want the event id %q, without a dot", v, eventID)
	}
	if v := h.Get("Webhook-Id"); v != eventID {
		t.Errorf("webhook-id = %q, want %q", v, eventID)
	}
	if v := h.Get("X-Webhook-Attempt"); v != strconv.Itoa(attempt) {
		t.Errorf("X-Webhook-Attempt = %q, want %d", v, attempt)
	}
	if v := h.Get("User-Agent"); v != "Hookrelay/test" {
		t.Errorf("User-Agent = %q, want Hookrelay/test", v)
	}
	if test {
		if v := h.Get("X-Webhook-Test"); v != "true" {
			t.Errorf("X-Webhook-Test = %q, want true", v)
		}
	}
	if secret == "" {
		return
	}

	// Independent of the signature package: what the seed's PHP hash_hmac computes.
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(c.Body)
	wantSeed := hex.EncodeToString(m.Sum(nil))
	if v := h.Get("X-Webhook-Signature"); v != wantSeed || !lowerHexRE.MatchString(v) {
		t.Errorf("X-Webhook-Signature = %q, want lowercase hex %q", v, wantSeed)
	}
	key := []byte(secret)
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		if key, err = base64.StdEncoding.DecodeString(rest); err != nil {
			t.Fatalf("secret %q: %v", secret, err)
		}
	}
	m = hmac.New(sha256.New, key)
	m.Write([]byte(h.Get("Webhook-Id") + "." + h.Get("Webhook-Timestamp") + "."))
	m.Write(c.Body)
	wantStd := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	if v := h.Get("Webhook-Signature"); v != wantStd {
		t.Errorf("webhook-signature = %q, want %q", v, wantStd)
	}
}

// checkSignaturesWithNode verifies the captured request as a receiver following the seed's
// documentation (its JavaScript snippet) and one using the official Standard Webhooks
// library would; a tampered body must fail both, so the checks can fail.
func checkSignaturesWithNode(t *testing.T, c testsrv.Capture, secret, swFormat string) {
	t.Helper()
	if secret == "" {
		return
	}
	body := testsrv.WriteFile(t, "body.json", c.Body)
	tampered := testsrv.WriteFile(t, "tampered.json", append(append([]byte(nil), c.Body[:len(c.Body)-2]...), ' ', '}', '}'))
	sig := c.Header.Get("X-Webhook-Signature")
	if out, ok := testsrv.RunNode(t, "seed-verify.js", body, sig, secret); !ok || out != "valid" {
		t.Errorf("the seed's JavaScript snippet rejects X-Webhook-Signature %q: %s", sig, out)
	}
	if out, ok := testsrv.RunNode(t, "seed-verify.js", tampered, sig, secret); ok {
		t.Errorf("the seed's JavaScript snippet accepts a tampered body: %s", out)
	}

	hdrs, _ := json.Marshal(map[string]string{
		"webhook-id":        c.Header.Get("Webhook-Id"),
		"webhook-timestamp": c.Header.Get("Webhook-Timestamp"),
		"webhook-signature": c.Header.Get("Webhook-Signature"),
	})
	hfile := testsrv.WriteFile(t, "headers.json", hdrs)
	args := []string{body, hfile, secret}
	if swFormat != "" {
		args = append(args, swFormat)
	}
	if out, ok := testsrv.RunNode(t, "standard-verify.js", args...); !ok || out != "valid" {
		t.Errorf("the standardwebhooks library rejects webhook-signature %s: %s", hdrs, out)
	}
	args[0] = tampered
	if out, ok := testsrv.RunNode(t, "standard-verify.js", args...); ok {
		t.Errorf("the standardwebhooks library accepts a tampered body: %s", out)
	}
}

func TestFormatsOtherThanJSONStillCarryTheSeedHeaders(t *testing.T) {
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true})
	for _, format := range []string{"slack", "discord"} {
		t.Run(format, func(t *testing.T) {
			rc := testsrv.NewReceiver(t, nil)
			wh := s.CreateWebhook(t, map[string]any{"name": format, "url": rc.URL, "events": []string{"message.received"},
				"format": format, "secret": plainSecret})
			sp := seedPublish[1]
			pub := s.Publish(t, sp.event, sp.data, sp.timestamp)
			c := rc.WaitFor(t, 1, 10*time.Second)[0]
			var body map[string]any
			keys := map[string]int{"slack": 1, "discord": 2}[format] // discord: content and allowed_mentions
			if err := json.Unmarshal(c.Body, &body); err != nil || len(body) != keys {
				t.Fatalf("%s body %s: want an object of %d keys (%v)", format, c.Body, keys, err)
			}
			field := map[string]string{"slack": "text", "discord": "content"}[format]
			text, _ := body[field].(string)
			if !strings.Contains(text, "Hello, I need help with my order.") || !strings.Contains(text, "John Doe") {
				t.Errorf("%s %s = %q, want a summary naming the visitor and the message", format, field, text)
			}
			checkHeaders(t, c, wh.Secret, sp.event, pub.ID, 1, false)
		})
	}
}

// A rotation in two steps, checked with the receivers' own verifiers: while the new secret is
// pending, a seed receiver (one X-Webhook-Signature) still verifies with the old secret and a
// Standard Webhooks receiver with either; after activation the seed header moves to the new
// secret and webhook-signature still carries the old one.
func TestRotatedSecretKeepsSigningWithTheOldKeyForReceiversMidSwitch(t *testing.T) {
	s := testsrv.Start(t, testsrv.Options{AllowHTTP: true, AllowPrivate: true})
	rc := testsrv.NewReceiver(t, nil)
	wh := s.CreateWebhook(t, map[string]any{"name": "rotating", "url": rc.URL, "events": []string{"conversation.started"},
		"generate_secret": true})
	var rotated struct {
		Secret string `json:"secret"`
	}
	s.Do(t, http.MethodPost, "/api/v1/webhooks/"+wh.ID+"/secret/rotation", nil, http.StatusOK, &rotated)
	if rotated.Secret == wh.Secret || !strings.HasPrefix(rotated.Secret, "whsec_") {
		t.Fatalf("rotation gave %q (old %q)", rotated.Secret, wh.Secret)
	}
	check := func(phase string, n int, seedSecret, otherSecret string) {
		t.Helper()
		s.Publish(t, "conversation.started", conversation, "")
		c := rc.WaitFor(t, n, 10*time.Second)[n-1]
		if entries := strings.Fields(c.Header.Get("Webhook-Signature")); len(entries) != 2 {
			t.Errorf("%s: webhook-signature %q: want two entries, new key and old key", phase, c.Header.Get("Webhook-Signature"))
		}
		body := testsrv.WriteFile(t, "body.json", c.Body)
		hdrs, _ := json.Marshal(map[string]string{"webhook-id": c.Header.Get("Webhook-Id"),
			"webhook-timestamp": c.Header.Get("Webhook-Timestamp"), "webhook-signature": c.Header.Get("Webhook-Signature")})
		hfile := testsrv.WriteFile(t, "headers.json", hdrs)
		for name, secret := range map[string]string{"new": rotated.Secret, "old": wh.Secret} {
			if out, ok := testsrv.RunNode(t, "standard-verify.js", body, hfile, secret); !ok {
				t.Errorf("%s: a Standard Webhooks receiver on the %s secret cannot verify: %s", phase, name, out)
			}
		}
		if out, ok := testsrv.RunNode(t, "standard-verify.js", body, hfile, "whsec_"+base64.StdEncoding.EncodeToString([]byte("some other key of 24 b"))); ok {
			t.Errorf("%s: an unrelated secret verifies: %s", phase, out)
		}
		// The seed signature has room for one key only.
		if out, ok := testsrv.RunNode(t, "seed-verify.js", body, c.Header.Get("X-Webhook-Signature"), seedSecret); !ok {
			t.Errorf("%s: X-Webhook-Signature does not verify with the secret in force: %s", phase, out)
		}
		if out, ok := testsrv.RunNode(t, "seed-verify.js", body, c.Header.Get("X-Webhook-Signature"), otherSecret); ok {
			t.Errorf("%s: X-Webhook-Signature verifies with the other secret too: %s", phase, out)
		}
	}
	check("pending", 1, wh.Secret, rotated.Secret)
	s.Do(t, http.MethodPost, "/api/v1/webhooks/"+wh.ID+"/secret/rotation/activate", nil, http.StatusOK, nil)
	check("activated", 2, rotated.Secret, wh.Secret)
}
