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
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/models"
)

// MaxBodyBytes bounds every API request body.
const MaxBodyBytes = 1 << 20

// object is a JSON object split into its keys, which decodeFields reads one by one.
type object map[string]json.RawMessage

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
	in, err := parseInput[T](raw, emptyOK)
	var bad badBody
	switch {
	case errors.As(err, &bad):
		problem(c, http.StatusBadRequest, string(bad))
	case err != nil:
		storeProblem(c, err)
	}
	return in, err == nil
}

// badBody is a body that is not one JSON object (400), not one whose fields are wrong (422).
type badBody string

func (e badBody) Error() string { return string(e) }

// parseInput decodes a body into a T: a badBody error when the body is not one JSON object, a
// *models.ValidationError from decodeFields when its fields do not fit T.
func parseInput[T any](raw []byte, emptyOK bool) (T, error) {
	var in T
	if len(bytes.TrimSpace(raw)) == 0 {
		if emptyOK {
			return in, nil
		}
		return in, badBody("the body must be a JSON object")
	}
	obj, err := splitBody(raw)
	if err != nil {
		return in, err
	}
	// Unknown keys refuse the body before anything in it is judged.
	verr := &models.ValidationError{}
	if v := reflect.ValueOf(&in).Elem(); !refuseUnknown(obj, fieldsOf(v.Type()), "", verr) {
		decodeFields(obj, v, "", verr)
	}
	return in, verr.OrNil()
}

// splitBody takes apart a body that must be one JSON object: the scanner reads the usual ones
// in one pass; encoding/json reads the rest, and words the errors.
func splitBody(raw []byte) (object, error) {
	if obj, ok := models.SplitObject(raw); ok {
		return obj, nil
	}
	return splitBodyJSON(raw)
}

// splitBodyJSON is splitBody with encoding/json alone: the path for what the scanner declines,
// and the fuzzer's reference for what it takes.
func splitBodyJSON(raw []byte) (object, error) {
	var obj object
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, badBody("the body must be a JSON object: " + jsonErrorText(err))
	}
	// Decoder.More is false before a stray "}" or "]", so ask for the next token instead:
	// only the end of input is acceptable after the object.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badBody("the body must hold a single JSON object with nothing after it")
	}
	return obj, nil
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
