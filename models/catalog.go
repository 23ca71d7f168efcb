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
	if len(bytes.TrimSpace(data)) == 0 || bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return nil, &ValidationError{Errors: []FieldError{{Field: "data", Message: "is required"}}}
	}
	var given [16]member
	obj, ok := scanPublishedData(data, given[:0])
	if !ok {
		if obj, ok = decodePublishedData(data, given[:0]); !ok {
			return nil, &ValidationError{Errors: []FieldError{{Field: "data", Message: "must be a JSON object"}}}
		}
	}
	var verr ValidationError // returned as a copy, so that it stays off the heap when the data is valid
	var buf bytes.Buffer
	buf.Grow(len(data) + 256)
	buf.WriteString(`{"event":`)
	writeJSONString(&buf, et.Name)
	buf.WriteString(`,"timestamp":"`)
	buf.Write(appendTimestamp(buf.AvailableBuffer(), occurred))
	buf.WriteString(`","data":{`)
	found := 0
	for i, f := range et.Fields {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeJSONString(&buf, f.Name)
		buf.WriteByte(':')
		raw, given := lookupMember(obj, f.Name, i)
		if given {
			found++
		}
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
				buf.WriteByte('"')
				buf.Write(appendTimestamp(buf.AvailableBuffer(), occurred))
				buf.WriteByte('"')
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
	if found < len(obj) { // the keys are distinct, so only then are some unknown
		for _, m := range obj {
			if !et.hasField(m.key) {
				verr.Add("data."+string(m.key), "unknown field for %s", et.Name)
			}
		}
	}
	if len(verr.Errors) > 0 {
		slices.SortFunc(verr.Errors, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
		return nil, &ValidationError{Errors: verr.Errors}
	}
	return buf.Bytes(), nil
}

// scanPublishedData takes apart the object that json.Decoder would read from data: the first
// value, whatever follows it unread. It declines what decodePublishedData must judge: anything
// but an object of distinct plain keys.
func scanPublishedData(data []byte, dst []member) ([]member, bool) {
	s := jsonScanner{data: data}
	s.skipSpace()
	if s.peek() != '{' {
		return nil, false
	}
	obj, ok := s.object(1, dst)
	return obj, ok && distinctKeys(obj)
}

// decodePublishedData is how BuildBody always read data: a "null" followed by anything but
// space reads as no keys at all, keys are unescaped, and the last of duplicate keys wins.
func decodePublishedData(data []byte, dst []member) ([]member, bool) {
	obj := map[string]json.RawMessage{}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&obj); err != nil {
		return nil, false
	}
	for key, raw := range obj {
		dst = append(dst, member{key: []byte(key), raw: raw})
	}
	return dst, true
}

func distinctKeys(obj []member) bool {
	for i, m := range obj {
		for _, prev := range obj[:i] {
			// Comparing the last bytes first spares most calls to compare the keys whole.
			if len(m.key) == len(prev.key) && (len(m.key) == 0 || m.key[len(m.key)-1] == prev.key[len(m.key)-1]) &&
				string(m.key) == string(prev.key) {
				return false
			}
		}
	}
	return true
}

// lookupMember finds key in obj, looking first at position at, where the key is when obj
// follows the catalogue's order as every body Hookrelay writes does.
func lookupMember(obj []member, key string, at int) ([]byte, bool) {
	if at < len(obj) && string(obj[at].key) == key {
		return obj[at].raw, true
	}
	for _, m := range obj {
		if string(m.key) == key {
			return m.raw, true
		}
	}
	return nil, false
}

func (et EventType) hasField(name []byte) bool {
	for _, f := range et.Fields {
		if f.Name == string(name) {
			return true
		}
	}
	return false
}

// writeValue validates raw for the field and writes its normalised JSON; it returns a
// message when raw does not fit.
func (f Field) writeValue(buf *bytes.Buffer, raw json.RawMessage) string {
	if out, msg, ok := f.plainValue(raw); ok {
		buf.Write(out)
		return msg
	}
	switch f.kind {
	case kindPositiveInt:
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
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), i, 10))
	case kindNonEmptyString:
		var s string
		if json.Unmarshal(raw, &s) != nil || strings.TrimSpace(s) == "" {
			return "must be a non-empty string"
		}
		writeJSONString(buf, s)
	case kindStringOrNull:
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
		buf.Write(strconv.AppendBool(buf.AvailableBuffer(), b))
	case kindTime:
		s, ok := decodeString(raw)
		if !ok {
			return "must be an RFC 3339 time string"
		}
		t, err := ParseEventTime(s)
		if err != nil {
			return err.Error()
		}
		buf.WriteByte('"')
		buf.Write(appendTimestamp(buf.AvailableBuffer(), t))
		buf.WriteByte('"')
	}
	return ""
}

// plainValue judges raw without decoding it when it has the form that Hookrelay and nearly
// every publisher write, in which writeValue would write raw back unchanged; it returns raw,
// trimmed, or the message. ok false leaves raw to the full decode.
func (f Field) plainValue(raw []byte) (out []byte, msg string, ok bool) {
	raw = bytes.TrimSpace(raw)
	switch f.kind {
	case kindPositiveInt:
		_, ok = plainPositiveInt(raw)
	case kindNonEmptyString:
		if raw, ok = plainJSONString(raw); ok && len(bytes.TrimSpace(raw[1:len(raw)-1])) == 0 {
			return nil, "must be a non-empty string", true
		}
	case kindStringOrNull:
		if ok = string(raw) == "null"; !ok {
			raw, ok = plainJSONString(raw)
		}
	case kindBool:
		ok = string(raw) == "true" || string(raw) == "false"
	case kindTime:
		ok = len(raw) == len(TimestampLayout)+2 && raw[0] == '"' && plainTimestamp(raw[1:len(raw)-1]) && raw[len(raw)-1] == '"'
	}
	if !ok {
		return nil, "", false
	}
	return raw, "", true
}

// decodeString is json.Unmarshal into a string (which takes null as ""), without its work
// for a string that reads as written.
func decodeString(raw []byte) (string, bool) {
	if plain, ok := plainJSONString(raw); ok {
		return string(plain[1 : len(plain)-1]), true
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err == nil
}

// plainTimestamp reports whether b is a time written in TimestampLayout that exists: then
// time.Parse takes it with that layout and with RFC 3339, and FormatTimestamp writes it back
// byte for byte. Checking that by hand spares a string and a parse per time on the hot paths.
func plainTimestamp(b []byte) bool {
	if len(b) != len(TimestampLayout) || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' ||
		string(b[19:]) != "+00:00" {
		return false
	}
	num := func(b []byte) int {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(b[0:4]), num(b[5:7]), num(b[8:10])
	if year < 0 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) {
		return false
	}
	hour, minute, sec := num(b[11:13]), num(b[14:16]), num(b[17:19])
	return 0 <= hour && hour <= 23 && 0 <= minute && minute <= 59 && 0 <= sec && sec <= 59
}

func daysIn(month, year int) int {
	if month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		return 29
	}
	return [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month-1]
}

// appendTimestamp is FormatTimestamp for a buffer, without a string to copy.
func appendTimestamp(b []byte, t time.Time) []byte { return t.UTC().AppendFormat(b, TimestampLayout) }

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
	if plainPrefix(inner) == len(inner) {
		return raw, true
	}
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
	var data [16]member
	env, ok := scanEnvelope(body, data[:0])
	if !ok {
		if env, ok = decodeEnvelope(body); !ok {
			return "", false, []string{"body is not a JSON object with event, timestamp and data"}
		}
	}
	if !env.hasEvent {
		return "", false, []string{"event: missing"}
	}
	et, ok := LookupEventType(string(env.event))
	if !ok {
		name := string(env.event)
		return name, false, []string{fmt.Sprintf("event: unknown type %q", name)}
	}
	if !env.hasTimestamp {
		problems = append(problems, "timestamp: missing")
	} else if !plainTimestamp(env.timestamp) {
		if _, err := time.Parse(TimestampLayout, string(env.timestamp)); err != nil {
			problems = append(problems, "timestamp: not in the form 2025-01-15T10:30:00+00:00")
		}
	}
	if !env.hasData {
		return et.Name, true, append(problems, "data: missing or not an object")
	}
	found := 0
	for i, f := range et.Fields {
		raw, ok := lookupMember(env.data, f.Name, i)
		if !ok {
			problems = append(problems, "data."+f.Name+": missing")
			continue
		}
		found++
		if msg := f.checkDelivered(raw); msg != "" {
			problems = append(problems, "data."+f.Name+": "+msg)
		}
	}
	if found < len(env.data) { // the keys are distinct, so only then are some unknown
		for _, m := range env.data {
			if !et.hasField(m.key) {
				problems = append(problems, "data."+string(m.key)+": unknown field")
			}
		}
	}
	slices.Sort(problems)
	return et.Name, true, problems
}

// envelope is a delivered body taken apart. A missing or null member is not had.
type envelope struct {
	event, timestamp                []byte
	data                            []member
	hasEvent, hasTimestamp, hasData bool
}

// envelopeKeys are the members CheckDelivered reads, indexed by keyEvent, keyTimestamp and keyData.
var envelopeKeys = [...]string{"event", "timestamp", "data"}

const (
	keyEvent = iota
	keyTimestamp
	keyData
)

// scanEnvelope takes body apart as json.Unmarshal into CheckDelivered's struct would, appending
// the data members to dst. It declines what decodeEnvelope must judge: repeated members (later
// ones win there, and data objects merge), keys that match a member only case-insensitively,
// values of other types than the struct's (an error there), and anything jsonScanner declines.
func scanEnvelope(body []byte, dst []member) (env envelope, ok bool) {
	s := jsonScanner{data: body}
	s.skipSpace()
	if s.peek() != '{' {
		return env, false
	}
	s.i++
	var seen [len(envelopeKeys)]bool
	for first := true; ; first = false {
		key, plain, more, ok := s.member(first)
		if !ok || !plain {
			return env, false
		}
		if !more {
			break
		}
		k := envelopeKey(key)
		if k == -1 {
			if !s.value(1) {
				return env, false
			}
			continue
		}
		if k < 0 || seen[k] {
			return env, false
		}
		seen[k] = true
		switch c := s.peek(); {
		case c == 'n':
			if !s.literal("null") {
				return env, false
			}
		case c == '"' && k != keyData:
			text, plain, ok := s.str()
			if !ok || !plain {
				return env, false
			}
			if k == keyEvent {
				env.event, env.hasEvent = text, true
			} else {
				env.timestamp, env.hasTimestamp = text, true
			}
		case c == '{' && k == keyData:
			if env.data, ok = s.object(2, dst); !ok || !distinctKeys(env.data) {
				return env, false
			}
			env.hasData = true
		default:
			return env, false
		}
	}
	s.skipSpace()
	return env, s.i == len(body)
}

// envelopeKey returns the index of key in envelopeKeys, -1 for another member, or -2 for one
// that encoding/json would match case-insensitively.
func envelopeKey(key []byte) int {
	for i, k := range envelopeKeys {
		if string(key) == k {
			return i
		}
	}
	for _, k := range envelopeKeys {
		if strings.EqualFold(string(key), k) {
			return -2
		}
	}
	return -1
}

// decodeEnvelope is how CheckDelivered always read body.
func decodeEnvelope(body []byte) (env envelope, ok bool) {
	var v struct {
		Event     *string                    `json:"event"`
		Timestamp *string                    `json:"timestamp"`
		Data      map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return env, false
	}
	if v.Event != nil {
		env.event, env.hasEvent = []byte(*v.Event), true
	}
	if v.Timestamp != nil {
		env.timestamp, env.hasTimestamp = []byte(*v.Timestamp), true
	}
	if v.Data != nil {
		env.hasData = true
		for key, raw := range v.Data {
			env.data = append(env.data, member{key: []byte(key), raw: raw})
		}
	}
	return env, true
}

func (f Field) checkDelivered(raw json.RawMessage) string {
	if _, msg, ok := f.plainValue(raw); ok {
		return msg
	}
	if f.kind == kindTime {
		s, ok := decodeString(raw)
		if !ok {
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
