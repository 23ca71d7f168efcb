package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hookrelay/hookrelay/models"
)

// Optional is an input field whose absence means something: a PATCH changes only the fields it
// is sent, and some fields take null to mean "remove". Set is true when the key was sent, Null
// when it was sent as null. The value is read with get, which also reports a value that did not
// fit T, so the problem lists it where the validation reads the field, among the other errors.
// The OpenAPI document shows the field as T (internal/openapigen unwraps it).
type Optional[T any] struct {
	Set   bool
	Null  bool
	value T
	// wrong is what decodeFields refused in the value sent, with paths relative to the field.
	wrong models.ValidationError
}

// get returns the value and true when one that fits T was sent (null decodes as encoding/json
// would: a string given null is ""). When one was sent that does not fit, it adds why to verr
// under path and returns false.
func (o *Optional[T]) get(verr *models.ValidationError, path string) (T, bool) {
	for _, e := range o.wrong.Errors {
		verr.Add(joinPath(path, e.Field), "%s", e.Message)
	}
	return o.value, o.Set && o.wrong.Errors == nil
}

func (o *Optional[T]) given(null bool) (any, *models.ValidationError) {
	o.Set, o.Null = true, null
	return &o.value, &o.wrong
}

// optional is any Optional, as decodeFields sees it.
type optional interface {
	given(null bool) (value any, wrong *models.ValidationError)
}

var (
	optionalType = reflect.TypeFor[optional]()
	rawJSONType  = reflect.TypeFor[json.RawMessage]()
)

// inputField is what decodeFields knows of one field of an input struct, read from its Go type
// and tags, the same ones the OpenAPI document is generated from.
type inputField struct {
	name     string // the JSON key, matched exactly
	index    int
	optional bool
	required bool // validate:"required"; only the description of a nested object uses it
	// wrongType is the problem's message for a value the field cannot hold.
	wrongType string
	// ranged integers must lie within their minimum and maximum tags.
	ranged   bool
	min, max int64
	item     *inputField // of a slice of objects
}

var inputFields sync.Map // reflect.Type → []inputField

// decodeFields decodes a JSON object into the input struct v. encoding/json would match keys
// case-insensitively, ignore unknown ones and say which field is wrong only in an error's text,
// so this reads the object key by key and refuses, naming each by its path (prefix, then the
// key): unknown keys, values of the wrong JSON type, integers outside their bounds, and the same
// inside nested objects. A refusal goes into the Optional that holds it, for its get to report,
// or else into verr. Values are otherwise decoded as encoding/json would, null included.
func decodeFields(obj object, v reflect.Value, prefix string, verr *models.ValidationError) {
	fields := fieldsOf(v.Type())
	refuseUnknown(obj, fields, prefix, verr)
	for i := range fields {
		if raw, ok := obj[fields[i].name]; ok {
			decodeValue(raw, v.Field(fields[i].index), &fields[i], joinPath(prefix, fields[i].name), verr)
		}
	}
}

// refuseUnknown adds the keys of obj that are no field's, sorted, and reports whether there were
// any.
func refuseUnknown(obj object, fields []inputField, prefix string, verr *models.ValidationError) bool {
	var unknown []string
	for k := range obj {
		if !slices.ContainsFunc(fields, func(f inputField) bool { return f.name == k }) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		verr.Add(joinPath(prefix, k), "unknown field")
	}
	return unknown != nil
}

func decodeValue(raw json.RawMessage, v reflect.Value, f *inputField, path string, verr *models.ValidationError) {
	if f.optional {
		value, wrong := v.Addr().Interface().(optional).given(string(raw) == "null")
		v, path, verr = reflect.ValueOf(value).Elem(), "", wrong
	}
	switch t := v.Type(); {
	case t == rawJSONType:
		v.SetBytes(raw)
	case t.Kind() == reflect.Struct:
		var obj object
		if json.Unmarshal(raw, &obj) != nil || obj == nil {
			verr.Add(path, "%s", f.wrongType)
			return
		}
		decodeFields(obj, v, path, verr)
	case t.Kind() == reflect.Slice && f.item != nil:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			verr.Add(path, "%s", f.wrongType)
			return
		}
		if items == nil {
			return
		}
		s := reflect.MakeSlice(t, len(items), len(items))
		for i, item := range items {
			decodeValue(item, s.Index(i), f.item, path+"["+strconv.Itoa(i)+"]", verr)
		}
		v.Set(s)
	case t.Kind() == reflect.String && plainString(raw):
		v.SetString(string(raw[1 : len(raw)-1]))
	default:
		if json.Unmarshal(raw, v.Addr().Interface()) != nil || (f.ranged && (v.Int() < f.min || v.Int() > f.max)) {
			verr.Add(path, "%s", f.wrongType)
		}
	}
}

// plainString reports a JSON string that encoding/json would decode to its inner bytes: ASCII,
// without escapes. Event names and timestamps are such strings, and the batch path reads two
// per event.
func plainString(raw []byte) bool {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	for _, c := range raw[1 : len(raw)-1] {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

// joinPath names a field inside path: "events" and "[1]" make "events[1]", "events[1]" and
// "data" make "events[1].data".
func joinPath(path, field string) string {
	switch {
	case path == "":
		return field
	case field == "":
		return path
	case field[0] == '[':
		return path + field
	}
	return path + "." + field
}

// fieldsOf reads an input struct's fields once. A field of a type the decoder cannot check is a
// programming error, refused at the first decode (which every input's tests make).
func fieldsOf(t reflect.Type) []inputField {
	if f, ok := inputFields.Load(t); ok {
		return f.([]inputField)
	}
	var fields []inputField
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if !sf.IsExported() || name == "-" || name == "" {
			continue
		}
		f := inputField{name: name, index: i, required: sf.Tag.Get("validate") == "required"}
		f.read(t, sf.Type, sf.Tag)
		fields = append(fields, f)
	}
	inputFields.Store(t, fields)
	return fields
}

// read sets what a field of type t with these tags asks of its values.
func (f *inputField) read(in, t reflect.Type, tag reflect.StructTag) {
	t, f.optional = valueType(t)
	switch k := t.Kind(); {
	case t == rawJSONType:
		f.wrongType = "" // any JSON value
	case k == reflect.String:
		f.wrongType = "must be a string"
	case k == reflect.Bool:
		f.wrongType = "must be true or false"
	case k >= reflect.Int && k <= reflect.Int64:
		lo, errLo := strconv.ParseInt(tag.Get("minimum"), 10, 64)
		hi, errHi := strconv.ParseInt(tag.Get("maximum"), 10, 64)
		f.wrongType = "must be an integer"
		if errLo == nil && errHi == nil {
			f.ranged, f.min, f.max = true, lo, hi
			f.wrongType = fmt.Sprintf("must be an integer from %d to %d", lo, hi)
		}
	case k == reflect.Struct:
		f.wrongType = objectMessage(t)
	case k == reflect.Slice && t.Elem().Kind() == reflect.String:
		f.wrongType = "must be an array of strings"
	case k == reflect.Slice && isObject(t.Elem()):
		f.wrongType = "must be an array of " + f.name
		f.item = &inputField{name: f.name}
		f.item.read(in, t.Elem(), "")
	default:
		panic(fmt.Sprintf("api: %s.%s is a %s, which decodeFields cannot check", in, f.name, t))
	}
}

// valueType is T and true for an Optional[T], else t and false.
func valueType(t reflect.Type) (reflect.Type, bool) {
	if !reflect.PointerTo(t).Implements(optionalType) {
		return t, false
	}
	v, _ := t.FieldByName("value")
	return v.Type, true
}

func isObject(t reflect.Type) bool {
	t, _ = valueType(t)
	return t.Kind() == reflect.Struct
}

// objectMessage describes a nested input object: "must be an object with a, b and an optional
// c". Required fields come first, and the others are called optional only beside them.
func objectMessage(t reflect.Type) string {
	var names, optional []string
	for _, f := range fieldsOf(t) {
		if f.required {
			names = append(names, f.name)
		} else {
			optional = append(optional, f.name)
		}
	}
	someRequired := len(names) > 0
	for _, name := range optional {
		if someRequired {
			name = "an optional " + name
		}
		names = append(names, name)
	}
	if len(names) < 2 {
		return "must be an object with " + strings.Join(names, "")
	}
	return "must be an object with " + strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
