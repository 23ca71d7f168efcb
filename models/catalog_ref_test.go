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

// The implementations of BuildBody and CheckDelivered before jsonscan.go, kept unchanged as
// the reference that the differential fuzz tests (catalog_fuzz_test.go) hold the current ones
// to. Copied whole with the helpers that changed since; they still share writeJSONString,
// ParseEventTime, FormatTimestamp and LookupEventType, which did not.

func buildBodyRef(et EventType, data json.RawMessage, occurred time.Time) ([]byte, error) {
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
		if msg := writeValueRef(f, &buf, raw); msg != "" {
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

func writeValueRef(f Field, buf *bytes.Buffer, raw json.RawMessage) string {
	switch f.kind {
	case kindPositiveInt:
		if i, ok := plainPositiveIntRef(raw); ok {
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
		if plain, ok := plainJSONStringRef(raw); ok {
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
		if plain, ok := plainJSONStringRef(raw); ok {
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

func plainJSONStringRef(raw []byte) ([]byte, bool) {
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

func plainPositiveIntRef(raw []byte) (int64, bool) {
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

func checkDeliveredRef(body []byte) (eventType string, known bool, problems []string) {
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
		if msg := checkDeliveredFieldRef(f, raw); msg != "" {
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

func checkDeliveredFieldRef(f Field, raw json.RawMessage) string {
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
	return writeValueRef(f, &sink, raw)
}
