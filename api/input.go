package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/models"
)

// MaxBodyBytes bounds every API request body.
const MaxBodyBytes = 1 << 20

// object is a decoded JSON object whose fields are read one by one, so every problem can name
// its field and PATCH can tell "absent" from "null".
type object map[string]json.RawMessage

// readObject reads the body as a JSON object, answering 413, 415 or 400 itself on failure.
// allowed lists the accepted fields; others are 422 naming the field.
func readObject(c *gin.Context, optional bool, allowed ...string) (object, bool) {
	raw, ok := readBody(c, optional)
	if !ok {
		return nil, false
	}
	return decodeObject(c, raw, optional, allowed...)
}

// readBody reads the body and checks its media type, answering 413, 415 or 400 itself on
// failure. The bytes are kept for the Idempotency-Key hash.
func readBody(c *gin.Context, optional bool) ([]byte, bool) {
	raw, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			problem(c, http.StatusRequestEntityTooLarge, "the body is larger than "+strconv.Itoa(MaxBodyBytes)+" bytes")
			return nil, false
		}
		problem(c, http.StatusBadRequest, "could not read the body")
		return nil, false
	}
	c.Set("rawBody", raw)
	empty := len(bytes.TrimSpace(raw)) == 0
	// An empty optional body has no media type worth refusing: `curl -d ''` sends nothing,
	// labelled application/x-www-form-urlencoded.
	if ct := c.GetHeader("Content-Type"); ct != "" && !(empty && optional) {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !bytesHasSuffix(mt, "+json")) {
			problem(c, http.StatusUnsupportedMediaType, "send the body as application/json")
			return nil, false
		}
	}
	return raw, true
}

// decodeObject decodes a body read by readBody as one JSON object, answering 400 or 422
// itself on failure.
func decodeObject(c *gin.Context, raw []byte, optional bool, allowed ...string) (object, bool) {
	obj, ok := bodyObject(c, raw, optional)
	if !ok {
		return nil, false
	}
	verr := &models.ValidationError{}
	for k := range obj {
		if !slices.Contains(allowed, k) {
			verr.Add(k, "unknown field")
		}
	}
	if verr.OrNil() != nil {
		storeProblem(c, verr)
		return nil, false
	}
	return obj, true
}

// readInput reads the body into a T, answering the problem itself when it cannot: 413, 415 or
// 400 for a body that is not one JSON object, 422 naming each field that decodeFields refuses.
// emptyOK takes an empty body for {}.
func readInput[T any](c *gin.Context, emptyOK bool) (T, bool) {
	raw, ok := readBody(c, emptyOK)
	if !ok {
		var zero T
		return zero, false
	}
	return decodeInput[T](c, raw, emptyOK)
}

// decodeInput decodes a body read by readBody into a T, answering 400 or 422 itself on failure.
func decodeInput[T any](c *gin.Context, raw []byte, emptyOK bool) (T, bool) {
	var in T
	obj, ok := bodyObject(c, raw, emptyOK)
	if !ok {
		return in, false
	}
	verr := &models.ValidationError{}
	decodeFields(obj, reflect.ValueOf(&in).Elem(), "", verr)
	if verr.OrNil() != nil {
		storeProblem(c, verr)
		return in, false
	}
	return in, true
}

// bodyObject splits the body into the keys of one JSON object, answering 400 itself when it is
// anything else.
func bodyObject(c *gin.Context, raw []byte, emptyOK bool) (object, bool) {
	if len(bytes.TrimSpace(raw)) == 0 {
		if emptyOK {
			return object{}, true
		}
		problem(c, http.StatusBadRequest, "the body must be a JSON object")
		return nil, false
	}
	var obj object
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&obj); err != nil || obj == nil {
		problem(c, http.StatusBadRequest, "the body must be a JSON object: "+jsonErrorText(err))
		return nil, false
	}
	// Decoder.More is false before a stray "}" or "]", so ask for the next token instead:
	// only the end of input is acceptable after the object.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		problem(c, http.StatusBadRequest, "the body must hold a single JSON object with nothing after it")
		return nil, false
	}
	return obj, true
}

// invalid answers 422 naming one field.
func invalid(c *gin.Context, field, format string, args ...any) {
	verr := &models.ValidationError{}
	verr.Add(field, format, args...)
	storeProblem(c, verr)
}

func bytesHasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

func jsonErrorText(err error) string {
	if err == nil {
		return "got null"
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return se.Error() + " at byte " + strconv.FormatInt(se.Offset, 10)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "expected an object, got " + te.Value
	}
	return err.Error()
}

// has reports whether the field was given (possibly as null).
func (o object) has(name string) bool { _, ok := o[name]; return ok }

// isNull reports whether the field was given as null.
func (o object) isNull(name string) bool {
	raw, ok := o[name]
	return ok && bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// str reads an optional string field.
func (o object) str(name string, verr *models.ValidationError) (string, bool) {
	raw, ok := o[name]
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		verr.Add(name, "must be a string")
		return "", false
	}
	return s, true
}

// boolean reads an optional boolean field.
func (o object) boolean(name string, verr *models.ValidationError) (bool, bool) {
	raw, ok := o[name]
	if !ok {
		return false, false
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		verr.Add(name, "must be true or false")
		return false, false
	}
	return b, true
}

// strings reads an optional array of strings.
func (o object) strings(name string, verr *models.ValidationError) ([]string, bool) {
	raw, ok := o[name]
	if !ok {
		return nil, false
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil || list == nil {
		verr.Add(name, "must be an array of strings")
		return nil, false
	}
	return list, true
}

// page reads ?limit= and ?cursor=.
func page(c *gin.Context) (models.Page, bool) {
	p := models.Page{Limit: 50}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			problem(c, http.StatusBadRequest, "limit must be an integer from 1 to 200", models.FieldError{Field: "limit", Message: "must be an integer from 1 to 200"})
			return p, false
		}
		p.Limit = n
	}
	if v := c.Query("cursor"); v != "" {
		id, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(id) == 0 || len(id) > 100 {
			problem(c, http.StatusBadRequest, "cursor is not one this API returned", models.FieldError{Field: "cursor", Message: "invalid cursor"})
			return p, false
		}
		p.Cursor = string(id)
	}
	return p, true
}

// cursor encodes the next-page cursor; nil when there is no next page.
func cursor(next string) *string {
	if next == "" {
		return nil
	}
	s := base64.RawURLEncoding.EncodeToString([]byte(next))
	return &s
}

// List is the envelope of every list response.
type List[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// eventFilter reads ?event=, which must name a catalogue event type when given: a typo
// should say so rather than list nothing.
func eventFilter(c *gin.Context) (string, bool) {
	name := c.Query("event")
	if name == "" {
		return "", true
	}
	if _, ok := models.LookupEventType(name); !ok {
		msg := "must be one of " + strings.Join(models.EventTypeNames(), ", ")
		problem(c, http.StatusBadRequest, "event "+msg, models.FieldError{Field: "event", Message: msg})
		return "", false
	}
	return name, true
}
