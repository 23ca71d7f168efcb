package inspector

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/models"
)

// Signature verdicts.
const (
	SigValid    = "valid"
	SigInvalid  = "invalid"
	SigMissing  = "missing"
	SigNoSecret = "no_secret"
)

// Payload verdict statuses.
const (
	PayloadOK           = "ok"
	PayloadProblems     = "problems"
	PayloadUnknownEvent = "unknown_event"
)

// Capture is a captured request as the API and the WebSocket show it.
type Capture struct {
	ID           string              `json:"id" example:"req_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	BinID        string              `json:"bin_id" example:"0190c3f1a2b3c6b1e1d4f3a2b5c8d7e6f9a0b1c2d3e4"`
	Method       string              `json:"method" example:"POST"`
	Path         string              `json:"path" example:"/inspect/0190c3f1a2b3c6b1e1d4f3a2b5c8d7e6f9a0b1c2d3e4"`
	Query        string              `json:"query" example:"source=test&x=1"`
	Headers      map[string][]string `json:"headers" extensions:"x-example-of=delivery-headers"`
	Body         string              `json:"body" extensions:"x-example-of=delivery-body"`
	BodyEncoding string              `json:"body_encoding" enums:"utf8,base64" example:"utf8"`
	Size         int64               `json:"size" extensions:"x-example-of=delivery-body-size"`
	RemoteAddr   string              `json:"remote_addr" example:"203.0.113.7:51234"`
	ReceivedAt   time.Time           `json:"received_at"`
	Verdicts     Verdicts            `json:"verdicts"`
	// Rejected says why the request was refused (its body was not kept); absent when accepted.
	Rejected string `json:"rejected,omitempty" example:"body larger than 1048576 bytes: answered 413" extensions:"x-example-of=absent"`
	// Answered is the HTTP status the bin answered with; null on captures stored before it
	// was kept.
	Answered *int `json:"answered" example:"200" extensions:"x-nullable"`
} // @name Capture

// Verdicts are the verification results of a capture, computed when it arrived.
type Verdicts struct {
	Signature         string `json:"signature" enums:"valid,invalid,missing,no_secret" example:"valid"`
	StandardSignature string `json:"standard_signature" enums:"valid,invalid,missing,no_secret" example:"valid"`
	// TimestampSkewSeconds is arrival time minus the request's timestamp; null without one.
	TimestampSkewSeconds *int64         `json:"timestamp_skew_seconds" example:"0"`
	Payload              PayloadVerdict `json:"payload"`
} // @name Verdicts

// PayloadVerdict is the body checked against the event catalogue.
type PayloadVerdict struct {
	Status   string   `json:"status" enums:"ok,problems,unknown_event" example:"ok"`
	Problems []string `json:"problems" extensions:"x-example-of=empty"`
} // @name PayloadVerdict

// PreviewBytes is how much of a body a summary carries.
const PreviewBytes = 1024

// CaptureSummary is a capture as lists and the live stream show it: everything but the
// headers, with the body cut to its first PreviewBytes. A body a sender chose to fill with
// characters JSON must escape ("<" becomes six bytes) would otherwise make a page of 200
// captures over a gigabyte; a summary stays a few kilobytes whatever was sent. The whole
// capture is read one at a time (GET …/requests/{rid}).
type CaptureSummary struct {
	ID           string    `json:"id" example:"req_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	BinID        string    `json:"bin_id" example:"0190c3f1a2b3c6b1e1d4f3a2b5c8d7e6f9a0b1c2d3e4"`
	Method       string    `json:"method" example:"POST"`
	Path         string    `json:"path" example:"/inspect/0190c3f1a2b3c6b1e1d4f3a2b5c8d7e6f9a0b1c2d3e4"` // first 1 KiB
	Query        string    `json:"query" example:"source=test&x=1"`                                      // first 1 KiB
	BodyPreview  string    `json:"body_preview" extensions:"x-example-of=delivery-body"`
	BodyEncoding string    `json:"body_encoding" enums:"utf8,base64" example:"utf8"`
	Truncated    bool      `json:"truncated" example:"false"` // the preview is not the whole body
	Size         int64     `json:"size" extensions:"x-example-of=delivery-body-size"`
	RemoteAddr   string    `json:"remote_addr" example:"203.0.113.7:51234"`
	ReceivedAt   time.Time `json:"received_at"`
	Verdicts     Verdicts  `json:"verdicts"`
	Rejected     string    `json:"rejected,omitempty" example:"body larger than 1048576 bytes: answered 413" extensions:"x-example-of=absent"`
	// Answered is the HTTP status the bin answered with; null on captures stored before it
	// was kept.
	Answered *int `json:"answered" example:"200" extensions:"x-nullable"`
} // @name CaptureSummary

// Message is what the bin's WebSocket sends for each capture.
type Message struct {
	Type string         `json:"type" example:"request"`
	Data CaptureSummary `json:"data"`
} // @name InspectorMessage

// SummaryOut converts a stored capture, whole or as ListCaptures reads it, to its summary.
func SummaryOut(c *models.Capture) CaptureSummary { return summaryOut(c, verdictsOf(c)) }

// summaryOut is SummaryOut with the verdicts at hand (a capture just made), rather than
// decoded again from the JSON they were stored as.
func summaryOut(c *models.Capture, v Verdicts) CaptureSummary {
	if v.Payload.Problems == nil {
		v.Payload.Problems = []string{}
	}
	out := CaptureSummary{ID: c.ID, BinID: c.BinID, Method: c.Method, Path: cut(c.Path, 1024), Query: cut(c.Query, 1024),
		Size: c.Size, RemoteAddr: c.RemoteAddr, ReceivedAt: c.ReceivedAt.UTC(), Rejected: c.Rejected, Verdicts: v, Answered: answered(c)}
	p := previewOf(c)
	out.Truncated = p.truncated
	if p.utf8 {
		out.BodyPreview, out.BodyEncoding = string(p.body), "utf8"
	} else {
		out.BodyPreview, out.BodyEncoding = base64.StdEncoding.EncodeToString(p.body), "base64"
	}
	return out
}

// preview is the part of a capture's body a summary carries.
type preview struct {
	body      []byte // the bytes to show: text when utf8, else to be sent as base64
	utf8      bool
	truncated bool // the preview is not the whole body
}

// previewOf cuts c's body to its first PreviewBytes. A cut can split a character: the
// incomplete end is dropped rather than the body called binary.
func previewOf(c *models.Capture) preview {
	body := c.Body
	if len(body) > PreviewBytes {
		body = body[:PreviewBytes]
	}
	p := preview{body: body, truncated: int64(len(body)) < c.Size && c.Rejected == ""}
	if text := trimPartialRune(body); utf8.Valid(text) {
		p.body, p.utf8 = text, true
	}
	return p
}

// appendMessage appends the bin's WebSocket message for capture c with verdicts v: the JSON
// of Message{Type: "request", Data: summaryOut(c, v)}, field for field, written straight
// from the capture. Through encoding/json the message of a watched bin's capture was built
// twice (the summary, copying the body's preview, then its encoding by reflection); this is
// on the path of every capture while someone watches. Strings are written as encoding/json
// writes them with HTML escaping off (models.AppendJSONString), which a browser's JSON.parse
// reads the same; TestMessageIsTheSummarysJSON holds the two together.
func appendMessage(b []byte, c *models.Capture, v *Verdicts) []byte {
	b = append(b, `{"type":"request","data":{"id":`...)
	b = models.AppendJSONString(b, c.ID)
	b = append(b, `,"bin_id":`...)
	b = models.AppendJSONString(b, c.BinID)
	b = append(b, `,"method":`...)
	b = models.AppendJSONString(b, c.Method)
	b = append(b, `,"path":`...)
	b = models.AppendJSONString(b, cut(c.Path, 1024))
	b = append(b, `,"query":`...)
	b = models.AppendJSONString(b, cut(c.Query, 1024))
	p := previewOf(c)
	b = append(b, `,"body_preview":`...)
	if p.utf8 {
		b = models.AppendJSONString(b, p.body)
		b = append(b, `,"body_encoding":"utf8"`...)
	} else {
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, p.body)
		b = append(b, `","body_encoding":"base64"`...)
	}
	b = append(b, `,"truncated":`...)
	b = strconv.AppendBool(b, p.truncated)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, c.Size, 10)
	b = append(b, `,"remote_addr":`...)
	b = models.AppendJSONString(b, c.RemoteAddr)
	b = append(b, `,"received_at":"`...)
	b = c.ReceivedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","verdicts":`...)
	b = appendVerdicts(b, v)
	if c.Rejected != "" {
		b = append(b, `,"rejected":`...)
		b = models.AppendJSONString(b, c.Rejected)
	}
	b = append(b, `,"answered":`...)
	if c.Answered == 0 {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(c.Answered), 10)
	}
	return append(b, "}}"...)
}

// message is the bin's WebSocket message for capture c with verdicts v (appendMessage), in
// one buffer: the preview with a third more for its escapes or base64, and a kilobyte for the
// rest of the summary. (512 bytes for the rest made the buffer of a 1 KiB JSON payload grow
// to twice its size halfway through the verdicts, on every watched capture.)
func message(c *models.Capture, v *Verdicts) []byte {
	p := min(len(c.Body), PreviewBytes)
	return appendMessage(make([]byte, 0, 1024+p+p/3), c, v)
}

// appendVerdicts appends v as encoding/json writes it (HTML escaping off), problems never
// null. Every capture stores its verdicts so, and a watched one sends them.
func appendVerdicts(b []byte, v *Verdicts) []byte {
	b = append(b, `{"signature":`...)
	b = models.AppendJSONString(b, v.Signature)
	b = append(b, `,"standard_signature":`...)
	b = models.AppendJSONString(b, v.StandardSignature)
	b = append(b, `,"timestamp_skew_seconds":`...)
	if v.TimestampSkewSeconds == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, *v.TimestampSkewSeconds, 10)
	}
	b = append(b, `,"payload":{"status":`...)
	b = models.AppendJSONString(b, v.Payload.Status)
	b = append(b, `,"problems":[`...)
	for i, p := range v.Payload.Problems {
		if i > 0 {
			b = append(b, ',')
		}
		b = models.AppendJSONString(b, p)
	}
	return append(b, "]}}"...)
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return string(trimPartialRune([]byte(s[:n])))
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of b (at most 3 bytes).
func trimPartialRune(b []byte) []byte {
	for i := 1; i <= 3 && i <= len(b); i++ {
		r := b[len(b)-i]
		if r < utf8.RuneSelf {
			return b
		}
		if utf8.RuneStart(r) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			return b
		}
	}
	return b
}

func verdictsOf(c *models.Capture) Verdicts {
	var v Verdicts
	if err := json.Unmarshal([]byte(c.Verdicts), &v); err != nil {
		v = Verdicts{Signature: SigMissing, StandardSignature: SigMissing, Payload: PayloadVerdict{Status: PayloadUnknownEvent}}
	}
	if v.Payload.Problems == nil {
		v.Payload.Problems = []string{}
	}
	return v
}

// CaptureOut converts a stored capture to its API shape. The body is sent as text when it is
// valid UTF-8 and as base64 otherwise, so binary bodies round-trip exactly.
func CaptureOut(c *models.Capture) Capture {
	out := Capture{ID: c.ID, BinID: c.BinID, Method: c.Method, Path: c.Path, Query: c.Query, Size: c.Size,
		RemoteAddr: c.RemoteAddr, ReceivedAt: c.ReceivedAt.UTC(), Rejected: c.Rejected, Answered: answered(c)}
	if err := json.Unmarshal([]byte(c.Headers), &out.Headers); err != nil || out.Headers == nil {
		out.Headers = map[string][]string{}
	}
	out.Verdicts = verdictsOf(c)
	if utf8.Valid(c.Body) {
		out.Body, out.BodyEncoding = string(c.Body), "utf8"
	} else {
		out.Body, out.BodyEncoding = base64.StdEncoding.EncodeToString(c.Body), "base64"
	}
	return out
}

// answered is the status a capture was answered with, nil when it was not kept (older rows).
func answered(c *models.Capture) *int {
	if c.Answered == 0 {
		return nil
	}
	st := c.Answered
	return &st
}
