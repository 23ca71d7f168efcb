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
// when it was sent as null; Value is then what T makes of null, as encoding/json would. The
// OpenAPI document shows the field as T (internal/openapigen unwraps it).
type Optional[T any] struct {
	Value T
	Set   bool
	Null  bool
}

func (o *Optional[T]) given(null bool) any {
	o.Set, o.Null = true, null
	return &o.Value
}

// optional is any Optional, as decodeFields sees it.
type optional interface{ given(null bool) any }

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
}

var inputFields sync.Map // reflect.Type → []inputField

// decodeFields decodes a JSON object into the input struct v. encoding/json would match keys
// case-insensitively, ignore unknown ones and say which field is wrong only in an error's text,
// so this reads the object key by key, adding to verr the path of each field it refuses
// (prefix, then the key): unknown keys (then nothing else of that object is read), values of
// the wrong JSON type, integers outside their bounds, nested objects with the same problems. A
// value is otherwise decoded as encoding/json would, null included (a string given null is "").
func decodeFields(obj object, v reflect.Value, prefix string, verr *models.ValidationError) {
	fields := fieldsOf(v.Type())
	var unknown []string
	for k := range obj {
		if !slices.ContainsFunc(fields, func(f inputField) bool { return f.name == k }) {
			unknown = append(unknown, k)
		}
	}
	if unknown != nil {
		slices.Sort(unknown)
		for _, k := range unknown {
			verr.Add(prefix+k, "unknown field")
		}
		return
	}
	for i := range fields {
		if raw, ok := obj[fields[i].name]; ok {
			decodeValue(raw, v.Field(fields[i].index), &fields[i], prefix+fields[i].name, verr)
		}
	}
}

func decodeValue(raw json.RawMessage, v reflect.Value, f *inputField, path string, verr *models.ValidationError) {
	if f.optional {
		v = reflect.ValueOf(v.Addr().Interface().(optional).given(string(raw) == "null")).Elem()
	}
	switch t := v.Type(); {
	case t == rawJSONType:
		v.SetBytes(raw)
	case t.Kind() == reflect.Pointer: // a nested object, nil when absent
		v.Set(reflect.New(t.Elem()))
		decodeNested(raw, v.Elem(), f.wrongType, path, verr)
	case t.Kind() == reflect.Struct:
		decodeNested(raw, v, f.wrongType, path, verr)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			verr.Add(path, "%s", f.wrongType)
			return
		}
		if items == nil {
			return
		}
		s := reflect.MakeSlice(t, len(items), len(items))
		wrongItem := objectMessage(t.Elem())
		for i, item := range items {
			decodeNested(item, s.Index(i), wrongItem, path+"["+strconv.Itoa(i)+"]", verr)
		}
		v.Set(s)
	default:
		if json.Unmarshal(raw, v.Addr().Interface()) != nil || (f.ranged && (v.Int() < f.min || v.Int() > f.max)) {
			verr.Add(path, "%s", f.wrongType)
		}
	}
}

// decodeNested decodes a nested object; anything else, null included, is wrongType.
func decodeNested(raw json.RawMessage, v reflect.Value, wrongType, path string, verr *models.ValidationError) {
	var obj object
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		verr.Add(path, "%s", wrongType)
		return
	}
	decodeFields(obj, v, path+".", verr)
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
		ft := sf.Type
		if reflect.PointerTo(ft).Implements(optionalType) {
			f.optional, ft = true, ft.Field(0).Type
		}
		f.wrongType = f.readType(t, ft, sf.Tag)
		fields = append(fields, f)
	}
	inputFields.Store(t, fields)
	return fields
}

// readType sets what the field's type t and tags ask of its values, and returns the message
// for a value of the wrong type.
func (f *inputField) readType(in, t reflect.Type, tag reflect.StructTag) string {
	switch k := t.Kind(); {
	case t == rawJSONType:
		return "" // any JSON value
	case k == reflect.String:
		return "must be a string"
	case k == reflect.Bool:
		return "must be true or false"
	case k >= reflect.Int && k <= reflect.Int64:
		lo, errLo := strconv.ParseInt(tag.Get("minimum"), 10, 64)
		hi, errHi := strconv.ParseInt(tag.Get("maximum"), 10, 64)
		if errLo != nil || errHi != nil {
			return "must be an integer"
		}
		f.ranged, f.min, f.max = true, lo, hi
		return fmt.Sprintf("must be an integer from %d to %d", lo, hi)
	case k == reflect.Struct:
		return objectMessage(t)
	case k == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		return objectMessage(t.Elem())
	case k == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "must be an array of strings"
	case k == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return "must be an array of " + f.name
	}
	panic(fmt.Sprintf("api: %s.%s is a %s, which decodeFields cannot check", in, f.name, t))
}

// objectMessage describes a nested input object: "must be an object with a, b and an optional
// c" (fields are called optional only beside required ones).
func objectMessage(t reflect.Type) string {
	fields := fieldsOf(t)
	someRequired := slices.ContainsFunc(fields, func(f inputField) bool { return f.required })
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
		if someRequired && !f.required {
			names[i] = "an optional " + f.name
		}
	}
	if len(names) < 2 {
		return "must be an object with " + strings.Join(names, "")
	}
	return "must be an object with " + strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
