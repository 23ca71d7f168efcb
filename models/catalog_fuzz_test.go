package models

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// BuildBody and CheckDelivered must answer every input exactly as their reference
// implementations (catalog_ref_test.go) do: the scanner only makes the usual inputs cheaper.

// seedData are data objects, published or delivered, and pieces of them that are easy to get
// subtly wrong.
func seedData() []string {
	deep := func(n int, open, close string) string { return strings.Repeat(open, n) + strings.Repeat(close, n) }
	mr, _ := LookupEventType(EventMessageReceived)
	cs, _ := LookupEventType(EventConversationStarted)
	at := time.Date(2025, 1, 15, 10, 31, 0, 0, time.UTC)
	seeds := []string{
		`{"conversation_id":123,"message_id":456,"content":"hi","created_at":"2025-01-15T10:31:00Z"}`,
		`{"content":"hi <b>&</b>","conversation_id":7,"message_id":9,"created_at":"2025-01-15T12:31:00+02:00"}`,
		string(benchData(16)),
		`{}`, `[]`, `[1,2]`, `null`, ``, ` `, `"x"`, `1`, `true`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a" 1}`,
		// What json.Decoder does not read, and what bytes.TrimSpace trims that JSON does not.
		`{"message_id":1} garbage`, `{"message_id":1}{"content":2}`, `{"message_id":1}` + "\xff", `null x`, `null,`, `nullx`,
		"\u00a0null", "\vnull", "null\v", "\f{}", " \t\r\n{} \t\r\n", "\u00a0{}", "\ufeff{}",
		// Keys: escaped, non-ASCII, case variants, duplicates.
		`{"con\u0074ent":"x","message_id":1,"conversation_id":2}`, `{"content\u0000":1}`, `{"\ud800":1}`, `{"é":1}`, `{"` + "\xff" + `":1}`,
		`{"Content":"x"}`, `{"MESSAGE_ID":1}`, `{"` + "\u212a" + `":1}`, `{"content":"a","content":"b","message_id":1,"conversation_id":1}`,
		`{"x":1,"x":2}`, `{"message_id":1,"message_id":null}`, `{"a\"b":1}`, `{"a\\b":1}`, "{\"\x7f\":1}", `{"":1}`,
		// Values: nulls, nested, strings, numbers, times.
		`{"message_id":null,"content":null,"is_from_admin":null,"admin_name":null,"created_at":null,"visitor_name":null}`,
		`{"message_id":1,"content":{"a":[1,{"b":null}]},"visitor_name":[],"status":{}}`,
		`{"message_id":1,"content":"é 中文 🎉","visitor_name":"\u00e9\ud83d\ude00","status":"\ud800","current_url":"\uDFFF x"}`,
		`{"message_id":1,"content":"tab\there \"q\" \\ \/ \b\f\n\r","visitor_name":"line` + "\u2028" + `","status":"` + "\xff\xfe" + `"}`,
		`{"message_id":1,"content":"   ","visitor_name":"\u0020"}`, `{"content":"` + "\t" + `"}`, `{"content":"\x"}`, `{"content":"\u12g4"}`,
		`{"content":"\u12"}`, `{"content":"abc`, `{"content":"\`,
		`{"message_id":1e3,"conversation_id":-0}`, `{"message_id":01}`, `{"message_id":1.0}`, `{"message_id":1E+3}`, `{"message_id":-}`,
		`{"message_id":1.}`, `{"message_id":.5}`, `{"message_id":-1}`, `{"message_id":0}`, `{"message_id":"5"}`, `{"message_id":1e}`,
		`{"message_id":99999999999999999999}`, `{"message_id":9223372036854775807}`, `{"message_id":9223372036854775808}`,
		`{"message_id":123456789012345678}`, `{"message_id":1234567890123456789}`, `{"message_id":12345678901234567890123}`,
		`{"is_from_admin":true}`, `{"is_from_admin":"true"}`, `{"is_from_admin":0}`, `{"is_from_admin":tru}`, `{"is_from_admin":truex}`,
		`{"is_from_admin": false }`, `{"admin_name":nul}`, `{"admin_name":NULL}`,
		`{"created_at":"2025-01-15T10:30:00+00:00"}`, `{"created_at":"2025-02-29T00:00:00+00:00"}`, `{"created_at":"2024-02-29T00:00:00+00:00"}`,
		`{"created_at":"1900-02-29T00:00:00+00:00"}`, `{"created_at":"2000-02-29T00:00:00+00:00"}`, `{"created_at":"2025-04-31T00:00:00+00:00"}`,
		`{"created_at":"2025-01-15T24:00:00+00:00"}`, `{"created_at":"2025-01-15T23:59:60+00:00"}`, `{"created_at":"2025-01-15T1:30:00+00:00"}`,
		`{"created_at":"2025-01-15T10:30:00.5+00:00"}`, `{"created_at":"0000-01-01T00:00:00+00:00"}`, `{"created_at":"9999-12-31T23:59:59+00:00"}`,
		`{"created_at":"+202-01-15T10:30:00+00:00"}`, `{"created_at":"2025-13-15T10:30:00+00:00"}`, `{"created_at":"2025-00-15T10:30:00+00:00"}`,
		`{"created_at":"2025-01-15t10:30:00+00:00"}`, `{"created_at":"2025-01-15T10:30:00-00:00"}`, `{"created_at":"2025-01-15T10:30:00+01:00"}`,
		`{"created_at":"2025-01-15T10:30:00+0000"}`, `{"created_at":"2025-01-15T10:30:00z"}`, `{"created_at":"\u0032025-01-15T10:30:00+00:00"}`,
		`{"created_at":"2025-01-15T10:30:00+00:00 "}`, `{"created_at":20250115}`, `{"created_at":""}`,
		// Nesting around encoding/json's limit of 10000 arrays and objects, counting the data object.
		`{"x":` + deep(9998, "[", "]") + `}`, `{"x":` + deep(9999, "[", "]") + `}`, `{"x":` + deep(10000, "[", "]") + `}`,
		`{"x":` + strings.Repeat(`{"a":`, 9998) + "1" + strings.Repeat("}", 9999), `{"x":` + strings.Repeat(`{"a":`, 9999) + "1" + strings.Repeat("}", 10000),
	}
	for _, et := range []EventType{mr, cs} {
		body := string(et.Example(at))
		seeds = append(seeds, body[strings.Index(body, `"data":`)+7:len(body)-1])
	}
	return seeds
}

// seedBodies are delivered bodies, and envelopes around seedData.
func seedBodies() []string {
	mr, _ := LookupEventType(EventMessageReceived)
	cs, _ := LookupEventType(EventConversationStarted)
	at := time.Date(2025, 1, 15, 10, 31, 0, 0, time.UTC)
	big, _ := mr.BuildBody(benchData(19), at)
	seeds := []string{
		documentedConversationStarted, documentedMessageReceived, string(mr.Example(at)), string(cs.Example(at)), string(big),
		documentedMessageReceived + " ", documentedMessageReceived + "x", documentedMessageReceived + "}", " \t\r\n" + documentedMessageReceived,
		documentedMessageReceived + documentedMessageReceived, "\ufeff" + documentedMessageReceived, documentedMessageReceived[:100],
		`{}`, `[]`, `null`, `"x"`, `1`, `true`, ``, `{"event":"nope"}`, `{"event":null}`, `{"event":1}`, `{"event":{}}`, `{"event":"é"}`,
		`{"event":"` + "\xff" + `"}`, `{"event":"message\u002ereceived"}`, `{"event":"message.received"}`, `{"event":""}`,
		`{"event":"message.received","timestamp":null,"data":null}`, `{"event":"message.received","timestamp":1,"data":{}}`,
		`{"event":"message.received","timestamp":"2025-01-15T10:30:00Z","data":[]}`, `{"event":"message.received","data":"x"}`,
		`{"ev\u0065nt":"message.received","data":{}}`, `{"Event":"message.received","data":{}}`, `{"EVENT":"message.received","data":{}}`,
		`{"event":"nope","Event":"message.received","data":{}}`, `{"event":"message.received","event":"nope"}`,
		`{"event":"message.received","TimeStamp":"2025-01-15T10:30:00+00:00","data":{}}`, `{"event":"message.received","Data":{}}`,
		`{"event":"message.received","timeſtamp":"2025-01-15T10:30:00+00:00","data":{}}`, `{"event":"message.received","DATA":{},"data":null}`,
		`{"event":"message.received","data":{"message_id":1},"data":{"content":"x"}}`, `{"event":"message.received","data":{"a":1},"data":null}`,
		`{"event":"message.received","other":{"x":[1,2,{"y":null}]},"data":{}}`, `{"event":"message.received","other":[1,}`,
		`{"event":"message.received","` + "\u212a" + `":1,"data":{}}`, `{"event":"message.received","ÉVENT":1,"data":{}}`,
	}
	for _, data := range seedData() {
		seeds = append(seeds, `{"event":"message.received","timestamp":"2025-01-15T10:30:00+00:00","data":`+data+`}`,
			`{"event":"conversation.started","data":`+data+`,"timestamp":"2025-02-29T10:30:00+00:00"}`)
	}
	return seeds
}

func FuzzCheckDelivered(f *testing.F) {
	for _, body := range seedBodies() {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// As a whole body, and as the data of one, where most mutations still leave a valid
		// envelope for the scanner to take apart.
		wrapped := append([]byte(`{"event":"message.received","timestamp":"2025-01-15T10:30:00+00:00","data":`), body...)
		for _, body := range [][]byte{body, append(wrapped, '}')} {
			event, known, problems := CheckDelivered(body)
			wantEvent, wantKnown, wantProblems := checkDeliveredRef(body)
			if event != wantEvent || known != wantKnown || !reflect.DeepEqual(problems, wantProblems) {
				t.Errorf("CheckDelivered(%q)\n = %q, %v, %#v\nwant %q, %v, %#v", body, event, known, problems, wantEvent, wantKnown, wantProblems)
			}
		}
	})
}

func FuzzBuildBody(f *testing.F) {
	at := time.Date(2025, 1, 15, 10, 31, 5, 0, time.UTC).Unix()
	for _, data := range seedData() {
		f.Add([]byte(data), true, at)
		f.Add([]byte(data), false, at)
	}
	for _, body := range seedBodies()[:5] {
		f.Add([]byte(body), true, int64(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, messageReceived bool, occurred int64) {
		et := Catalogue[0]
		if messageReceived {
			et = Catalogue[1]
		}
		at := time.Unix(occurred, 0)
		body, err := et.BuildBody(data, at)
		wantBody, wantErr := buildBodyRef(et, data, at)
		if !bytes.Equal(body, wantBody) || (body == nil) != (wantBody == nil) || !sameError(err, wantErr) {
			t.Errorf("%s BuildBody(%q, %d)\n = %s, %#v\nwant %s, %#v", et.Name, data, occurred, body, err, wantBody, wantErr)
		}
	})
}

func sameError(err, want error) bool {
	if err == nil || want == nil {
		return err == nil && want == nil
	}
	var verr, wantVerr *ValidationError
	return errors.As(err, &verr) && errors.As(want, &wantVerr) && reflect.DeepEqual(verr, wantVerr) && err.Error() == want.Error()
}

// The hand check of a time must accept exactly the times that time.Parse takes in
// TimestampLayout, written with two-digit hours.
func TestPlainTimestampAgreesWithTimeParse(t *testing.T) {
	for _, year := range []int{0, 1, 4, 100, 400, 1900, 2000, 2024, 2025, 2100, 9999} {
		for month := range 14 {
			for day := range 33 {
				for _, hms := range [][3]int{{0, 0, 0}, {23, 59, 59}, {24, 0, 0}, {0, 60, 0}, {0, 0, 60}} {
					s := fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d+00:00", year, month, day, hms[0], hms[1], hms[2])
					_, err := time.Parse(TimestampLayout, s)
					if got := plainTimestamp([]byte(s)); got != (err == nil) {
						t.Errorf("plainTimestamp(%q) = %v; time.Parse: %v", s, got, err)
					}
				}
			}
		}
	}
}

// Nor may it accept what time.Parse rejects or writes otherwise, whatever the text.
func FuzzPlainTimestamp(f *testing.F) {
	for _, s := range []string{"2025-01-15T10:30:00+00:00", "2024-02-29T00:00:00+00:00", "2025-02-29T00:00:00+00:00",
		"0000-02-29T23:59:59+00:00", "2100-02-29T00:00:00+00:00", "2025-01-15T24:00:00+00:00", "2025-01-1 T10:30:00+00:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !plainTimestamp([]byte(s)) {
			return
		}
		if _, err := time.Parse(TimestampLayout, s); err != nil {
			t.Errorf("plainTimestamp(%q) but time.Parse: %v", s, err)
		}
		if tm, err := ParseEventTime(s); err != nil || FormatTimestamp(tm) != s {
			t.Errorf("plainTimestamp(%q) but ParseEventTime gives %v, %v", s, tm, err)
		}
	})
}
