package inspector

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

// jsonOf is v as encoding/json writes it with HTML escaping off.
func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// checkMessage fails unless the WebSocket message of c is, byte for byte, the JSON of the
// summary that lists show, and the stored verdicts are the JSON of v.
func checkMessage(t *testing.T, c *models.Capture, v Verdicts) {
	t.Helper()
	want := jsonOf(t, Message{Type: "request", Data: summaryOut(c, v)})
	if got := appendMessage(nil, c, &v); !bytes.Equal(got, want) {
		t.Errorf("message of %+v:\n got %s\nwant %s", c, got, want)
	}
	wantV := v
	if wantV.Payload.Problems == nil {
		wantV.Payload.Problems = []string{}
	}
	if got, want := appendVerdicts(nil, &v), jsonOf(t, wantV); !bytes.Equal(got, want) {
		t.Errorf("verdicts %+v:\n got %s\nwant %s", v, got, want)
	}
	// What is stored reads back as what json.Marshal stored before.
	old, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	back, was := verdictsOf(&models.Capture{Verdicts: string(appendVerdicts(nil, &v))}), verdictsOf(&models.Capture{Verdicts: string(old)})
	if !bytes.Equal(jsonOf(t, back), jsonOf(t, was)) {
		t.Errorf("stored verdicts read back as %+v, json.Marshal's as %+v", back, was)
	}
}

func TestMessageIsTheSummarysJSON(t *testing.T) {
	skew := int64(-3)
	at := time.Date(2026, 12, 5, 16, 4, 5, 120300000, time.FixedZone("CET", 3600))
	valid := Verdicts{Signature: SigValid, StandardSignature: SigMissing, TimestampSkewSeconds: &skew,
		Payload: PayloadVerdict{Status: PayloadOK}}
	odd := Verdicts{Signature: SigInvalid, StandardSignature: SigNoSecret,
		Payload: PayloadVerdict{Status: PayloadProblems, Problems: []string{`data.<x> & "y"`, "bad \xff byte", "line\u2028sep"}}}
	json1k := `{"event":"message.received","data":{"content":"` + strings.Repeat(`<b>"quoted"</b> `, 80) + `"}}`
	cases := map[string]*models.Capture{
		"json body": {ID: "req_1", BinID: "bin", Method: "POST", Path: "/inspect/bin", Body: []byte(`{"a":"<&>"}`),
			Size: 11, RemoteAddr: "127.0.0.1:5000", ReceivedAt: at, Answered: 200},
		"body cut to the preview": {ID: "req_2", BinID: "bin", Method: "POST", Path: "/inspect/bin", Query: "x=1&y=<2>",
			Body: []byte(json1k), Size: int64(len(json1k)), ReceivedAt: at.Add(time.Nanosecond)},
		"cut inside a character": {ID: "req_3", BinID: "bin", Method: "PUT", Path: "/p",
			Body: []byte(strings.Repeat("a", PreviewBytes-1) + "é and more"), Size: PreviewBytes + 11, ReceivedAt: at},
		"binary body": {ID: "req_4", BinID: "bin", Method: "POST", Path: "/p", Body: []byte{0xff, 0x00, 0xfe, '"'},
			Size: 4, ReceivedAt: at, Answered: 418},
		"rejected": {ID: "req_5", BinID: "bin", Method: "POST", Path: "/p", Body: []byte{}, Size: MaxBodyBytes + 1,
			Rejected: "body larger than 1048576 bytes: answered 413", ReceivedAt: at, Answered: 413},
		"long odd path and query": {ID: "req_6", BinID: "bin", Method: "GET", Path: "/" + strings.Repeat("ü", 700) + "\xff",
			Query: strings.Repeat("q=\u2029&", 300), Body: nil, ReceivedAt: time.Unix(0, 0)},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			checkMessage(t, c, valid)
			checkMessage(t, c, odd)
		})
	}
}

func FuzzMessageIsTheSummarysJSON(f *testing.F) {
	f.Add("/inspect/x", "a=<1>", []byte(`{"k":"v \u2028"}`), int64(20), "", 200, "problem \"q\"", int64(5))
	f.Add("/\xff", "", []byte{0xc3}, int64(1<<20), "rejected <why>", 0, "", int64(-1))
	f.Fuzz(func(t *testing.T, path, query string, body []byte, size int64, rejected string, answered int, problem string, skew int64) {
		c := &models.Capture{ID: "req_f", BinID: "bin", Method: "POST", Path: path, Query: query, Body: body,
			Size: size, Rejected: rejected, Answered: answered, RemoteAddr: "[::1]:9", ReceivedAt: time.Unix(0, skew)}
		v := Verdicts{Signature: SigValid, StandardSignature: problem, TimestampSkewSeconds: &skew,
			Payload: PayloadVerdict{Status: PayloadProblems, Problems: []string{problem, path}}}
		checkMessage(t, c, v)
	})
}

// A watched capture's message is built in one allocation: for a delivered 1 KiB payload with
// the seed's headers verified, the buffer message sizes holds all of it.
func TestMessageOfADeliveredPayloadIsOneAllocation(t *testing.T) {
	at := time.Date(2026, 12, 6, 14, 30, 0, 123456789, time.UTC)
	body := []byte(`{"event":"message.received","timestamp":"2026-12-06T14:30:00.123Z","data":{"message_id":7,"content":"` +
		strings.Repeat("hello ", 105) + `","is_from_admin":false,"admin_name":null,"conversation_id":42,` +
		`"visitor_name":"John Doe","visitor_email":"john@example.com","visitor_phone":"+1234567890",` +
		`"visitor_ip":"192.168.1.100","current_url":"https://example.com/products","status":"open","created_at":"2026-12-06T14:30:00.123Z"}}`)
	skew := int64(0)
	v := Verdicts{Signature: SigValid, StandardSignature: SigNoSecret, TimestampSkewSeconds: &skew,
		Payload: PayloadVerdict{Status: PayloadOK}}
	c := &models.Capture{ID: models.NewID("req"), BinID: models.NewID("bin"), Method: "POST", Path: "/inspect/" + models.NewID("bin"),
		Body: body, Size: int64(len(body)), RemoteAddr: "127.0.0.1:54321", ReceivedAt: at, Answered: 200}
	if len(body) < 1000 || len(body) > PreviewBytes {
		t.Fatalf("the payload is %d bytes, want about 1 KiB and all of it in the preview", len(body))
	}
	if n := testing.AllocsPerRun(50, func() { message(c, &v) }); n != 1 {
		t.Errorf("building the message took %.0f allocations, want 1", n)
	}
	checkMessage(t, c, v)
}
