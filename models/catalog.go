package models

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The event catalogue is the one source of truth for what each event carries: the publisher
// validates with it, the body builder writes keys in its order, the inspector checks captured
// payloads with it, and /event-types derives JSON Schemas and examples from it.

// Event type names (the two events Hookrelay sends).
const (
	EventConversationStarted = "conversation.started"
	EventMessageReceived     = "message.received"
)

// TimestampLayout is the format of every time in a body and in X-Webhook-Timestamp: UTC, whole seconds, "+00:00" rather than "Z".
const TimestampLayout = "2006-01-02T15:04:05+00:00"

// FormatTimestamp formats t in TimestampLayout.
func FormatTimestamp(t time.Time) string { return t.UTC().Format(TimestampLayout) }

type fieldKind int

const (
	kindPositiveInt fieldKind = iota // JSON integer > 0
	kindNonEmptyString
	kindStringOrNull
	kindBool
	kindTime // RFC 3339 in, TimestampLayout out
)

// Field describes one key of an event's data object, in delivery order.
type Field struct {
	Name        string
	kind        fieldKind
	Required    bool // must be given when publishing
	Description string
	Example     any
}

// EventType is one entry of the catalogue.
type EventType struct {
	Name        string
	Description string
	Fields      []Field
}

var conversationFields = []Field{
	{Name: "conversation_id", kind: kindPositiveInt, Required: true, Description: "Conversation id in the chat application", Example: 123},
	{Name: "visitor_name", kind: kindStringOrNull, Description: "Visitor's name, null when unknown", Example: "John Doe"},
	{Name: "visitor_email", kind: kindStringOrNull, Description: "Visitor's email, null when unknown", Example: "john@example.com"},
	{Name: "visitor_phone", kind: kindStringOrNull, Description: "Visitor's phone, null when unknown", Example: "+1234567890"},
	{Name: "visitor_ip", kind: kindStringOrNull, Description: "Visitor's IP address, null when unknown", Example: "192.168.1.100"},
	{Name: "current_url", kind: kindStringOrNull, Description: "Page the visitor was on, null when unknown", Example: "https://example.com/products"},
	{Name: "status", kind: kindStringOrNull, Description: "Conversation status", Example: "open"},
	{Name: "created_at", kind: kindTime, Description: "When the conversation or message was created (defaults to the event time)", Example: "2025-01-15T10:30:00+00:00"},
}

// Catalogue lists the event types in a stable order.
var Catalogue = []EventType{
	{
		Name:        EventConversationStarted,
		Description: "A visitor starts a new conversation",
		Fields:      conversationFields,
	},
	{
		Name:        EventMessageReceived,
		Description: "A visitor sends a new message",
		Fields: append([]Field{
			{Name: "message_id", kind: kindPositiveInt, Required: true, Description: "Message id in the chat application", Example: 456},
			{Name: "content", kind: kindNonEmptyString, Required: true, Description: "Message text", Example: "Hello, I need help with my order."},
			{Name: "is_from_admin", kind: kindBool, Description: "Whether an admin wrote it (default false)", Example: false},
			{Name: "admin_name", kind: kindStringOrNull, Description: "Admin's name when is_from_admin, else null", Example: nil},
		}, withExample(conversationFields, "created_at", "2025-01-15T10:31:00+00:00")...),
	},
}

func withExample(fields []Field, name string, example any) []Field {
	out := slices.Clone(fields)
	for i := range out {
		if out[i].Name == name {
			out[i].Example = example
		}
	}
	return out
}

// LookupEventType returns the catalogue entry for name.
func LookupEventType(name string) (EventType, bool) {
	for _, et := range Catalogue {
		if et.Name == name {
			return et, true
		}
	}
	return EventType{}, false
}

// EventTypeNames returns the catalogue's names in order.
func EventTypeNames() []string {
	names := make([]string, len(Catalogue))
	for i, et := range Catalogue {
		names[i] = et.Name
	}
	return names
}

// ParseEventTime accepts RFC 3339 with any offset (or Z) and returns it in UTC, truncated
// to whole seconds as TimestampLayout carries no fractions.
func ParseEventTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("must be an RFC 3339 time such as 2025-01-15T10:30:00+00:00")
	}
	return t.UTC().Truncate(time.Second), nil
}

// BuildBody validates a published data object for an event type and returns the exact bytes
// every webhook receives: {"event","timestamp","data"} with the catalogue's keys in order,
// every key present (null where unknown) and times in TimestampLayout. Field names in errors are
// prefixed with "data.".
func (et EventType) BuildBody(data json.RawMessage, occurred time.Time) ([]byte, error) {
	verr := &ValidationError{}
	obj := map[string]json.RawMessage{}
	dec := json.NewDecoder(bytes.NewReader(data))
	if len(bytes.TrimSpace(data)) == 0 || bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		verr.Add("data", "is required")
		return nil, verr
	}
	if err := dec.Decode(&obj); err != nil {
		verr.Add("data", "must be a JSON object")
		return nil, verr
	}
	for key := range obj {
		if !slices.ContainsFunc(et.Fields, func(f Field) bool { return f.Name == key }) {
			verr.Add("data."+key, "unknown field for %s", et.Name)
		}
	}
	var buf bytes.Buffer
	buf.Grow(512)
	buf.WriteString(`{"event":`)
	writeJSONString(&buf, et.Name)
	buf.WriteString(`,"timestamp":"`)
	buf.WriteString(FormatTimestamp(occurred))
	buf.WriteString(`","data":{`)
	for i, f := range et.Fields {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeJSONString(&buf, f.Name)
		buf.WriteByte(':')
		raw, given := obj[f.Name]
		if given && bytes.Equal(bytes.TrimSpace(raw), []byte("null")) && f.kind != kindStringOrNull {
			given = false // null means "not given" for fields that have a default or are required
		}
		if !given {
			switch {
			case f.Required:
				verr.Add("data."+f.Name, "is required")
			case f.kind == kindBool:
				buf.WriteString("false")
			case f.kind == kindTime:
				buf.WriteString(`"` + FormatTimestamp(occurred) + `"`)
			default:
				buf.WriteString("null")
			}
			continue
		}
		if msg := f.writeValue(&buf, raw); msg != "" {
			verr.Add("data."+f.Name, "%s", msg)
		}
	}
	buf.WriteString("}}")
	if err := verr.OrNil(); err != nil {
		slices.SortFunc(verr.Errors, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeValue validates raw for the field and writes its normalised JSON; it returns a
// message when raw does not fit.
func (f Field) writeValue(buf *bytes.Buffer, raw json.RawMessage) string {
	switch f.kind {
	case kindPositiveInt:
		if i, ok := plainPositiveInt(raw); ok {
			buf.Write(strconv.AppendInt(buf.AvailableBuffer(), i, 10))
			return ""
		}
		var n json.Number
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		// json.Number also decodes from a quoted string; "123" is not an integer here.
		if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] == '"' || dec.Decode(&n) != nil {
			return "must be a positive integer"
		}
		i, err := n.Int64()
		if err != nil || i <= 0 {
			return "must be a positive integer"
		}
		fmt.Fprintf(buf, "%d", i)
	case kindNonEmptyString:
		if plain, ok := plainJSONString(raw); ok {
			if strings.TrimSpace(string(plain[1:len(plain)-1])) == "" {
				return "must be a non-empty string"
			}
			buf.Write(plain)
			return ""
		}
		var s string
		if json.Unmarshal(raw, &s) != nil || strings.TrimSpace(s) == "" {
			return "must be a non-empty string"
		}
		writeJSONString(buf, s)
	case kindStringOrNull:
		if plain, ok := plainJSONString(raw); ok {
			buf.Write(plain)
			return ""
		}
		var s *string
		if json.Unmarshal(raw, &s) != nil {
			return "must be a string or null"
		}
		if s == nil {
			buf.WriteString("null")
		} else {
			writeJSONString(buf, *s)
		}
	case kindBool:
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			return "must be true or false"
		}
		fmt.Fprintf(buf, "%t", b)
	case kindTime:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "must be an RFC 3339 time string"
		}
		t, err := ParseEventTime(s)
		if err != nil {
			return err.Error()
		}
		buf.WriteString(`"` + FormatTimestamp(t) + `"`)
	}
	return ""
}

// plainJSONString returns raw, trimmed, when it is a JSON string that decoding and writing
// again with writeJSONString would reproduce byte for byte: no escapes, no control
// characters, valid UTF-8, no U+2028 or U+2029 (which encoding/json escapes). Most text is
// such a string, and copying it skips a decode and an encode per field.
func plainJSONString(raw []byte) ([]byte, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c < 0x20 || c == '"' || c == '\\' {
			return nil, false
		}
	}
	if !utf8.Valid(inner) || bytes.Contains(inner, []byte("\u2028")) || bytes.Contains(inner, []byte("\u2029")) {
		return nil, false
	}
	return raw, true
}

// plainPositiveInt reads raw when it is a plain run of digits (the usual form of an id).
func plainPositiveInt(raw []byte) (int64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || len(raw) > 18 || raw[0] == '0' {
		return 0, false
	}
	var n int64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// writeJSONString writes s as a JSON string without HTML escaping, so text such as
// "<b>" or "&" reaches receivers as written.
func writeJSONString(buf *bytes.Buffer, s string) {
	buf.Write(AppendJSONString(buf.AvailableBuffer(), s))
}

// Example returns the documented sample body for the event type at the given time: the John Doe
// conversation shown in the README, used by the test action and /event-types.
func (et EventType) Example(at time.Time) []byte {
	data := map[string]any{}
	for _, f := range et.Fields {
		if f.kind == kindTime {
			data[f.Name] = FormatTimestamp(at)
			continue
		}
		data[f.Name] = f.Example
	}
	raw, _ := json.Marshal(data)
	body, err := et.BuildBody(raw, at)
	if err != nil {
		panic("catalogue example does not validate: " + err.Error())
	}
	return body
}

// JSONSchema describes the event's data object (JSON Schema 2020-12).
func (et EventType) JSONSchema() map[string]any {
	props := map[string]any{}
	var required []string
	for _, f := range et.Fields {
		var p map[string]any
		switch f.kind {
		case kindPositiveInt:
			p = map[string]any{"type": "integer", "minimum": 1}
		case kindNonEmptyString:
			p = map[string]any{"type": "string", "minLength": 1}
		case kindStringOrNull:
			p = map[string]any{"type": []string{"string", "null"}}
		case kindBool:
			p = map[string]any{"type": "boolean", "default": false}
		case kindTime:
			p = map[string]any{"type": "string", "format": "date-time"}
		}
		p["description"] = f.Description
		props[f.Name] = p
		if f.Required {
			required = append(required, f.Name)
		}
	}
	return map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"type":                 "object",
		"properties":           props,
		"required":             required,
		"additionalProperties": false,
	}
}

// CheckDelivered checks a received webhook body against the catalogue as a receiver would:
// the envelope, the event type, and every data key present with the right type and the documented
// time format. It returns the event type found and the problems (none means the payload is ok).
func CheckDelivered(body []byte) (eventType string, known bool, problems []string) {
	var env struct {
		Event     *string                    `json:"event"`
		Timestamp *string                    `json:"timestamp"`
		Data      map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return "", false, []string{"body is not a JSON object with event, timestamp and data"}
	}
	if env.Event == nil {
		return "", false, []string{"event: missing"}
	}
	et, ok := LookupEventType(*env.Event)
	if !ok {
		return *env.Event, false, []string{fmt.Sprintf("event: unknown type %q", *env.Event)}
	}
	if env.Timestamp == nil {
		problems = append(problems, "timestamp: missing")
	} else if _, err := time.Parse(TimestampLayout, *env.Timestamp); err != nil {
		problems = append(problems, "timestamp: not in the form 2025-01-15T10:30:00+00:00")
	}
	if env.Data == nil {
		return et.Name, true, append(problems, "data: missing or not an object")
	}
	for _, f := range et.Fields {
		raw, ok := env.Data[f.Name]
		if !ok {
			problems = append(problems, "data."+f.Name+": missing")
			continue
		}
		if msg := f.checkDelivered(raw); msg != "" {
			problems = append(problems, "data."+f.Name+": "+msg)
		}
	}
	for key := range env.Data {
		if !slices.ContainsFunc(et.Fields, func(f Field) bool { return f.Name == key }) {
			problems = append(problems, "data."+key+": unknown field")
		}
	}
	slices.Sort(problems)
	return et.Name, true, problems
}

func (f Field) checkDelivered(raw json.RawMessage) string {
	if f.kind == kindTime {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "must be a time string"
		}
		if _, err := time.Parse(TimestampLayout, s); err != nil {
			return "not in the form 2025-01-15T10:30:00+00:00"
		}
		return ""
	}
	var sink bytes.Buffer
	return f.writeValue(&sink, raw)
}
