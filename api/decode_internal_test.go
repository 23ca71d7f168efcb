package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/models"
)

type demoPart struct {
	Kind string `json:"kind" validate:"required"`
	Note string `json:"note"`
}

type demoInput struct {
	Name   string             `json:"name"`
	On     bool               `json:"on"`
	Count  int                `json:"count"`
	Status Optional[int]      `json:"status" minimum:"200" maximum:"599"`
	Secret Optional[string]   `json:"secret"`
	Tags   Optional[[]string] `json:"tags"`
	Data   json.RawMessage    `json:"data"`
	Part   *demoPart          `json:"part"`
	Parts  []demoPart         `json:"parts"`
	Hidden string             `json:"-"`
}

func TestDecodeFieldsNamesEveryRefusedField(t *testing.T) {
	cases := []struct {
		name, body string
		want       demoInput // compared when errs is empty
		errs       []string  // "path: message", in order
	}{
		{name: "nothing sent", body: `{}`},
		{name: "every field", body: `{"name":"n","on":true,"count":-3,"status":599,"secret":"s","tags":["a"],` +
			`"data":[1, {"x" : null}],"part":{"kind":"k"},"parts":[{"kind":"a","note":"b"}]}`,
			want: demoInput{Name: "n", On: true, Count: -3, Status: Optional[int]{Value: 599, Set: true},
				Secret: Optional[string]{Value: "s", Set: true}, Tags: Optional[[]string]{Value: []string{"a"}, Set: true},
				Data: json.RawMessage(`[1, {"x" : null}]`), Part: &demoPart{Kind: "k"}, Parts: []demoPart{{Kind: "a", Note: "b"}}}},
		{name: "null is what encoding/json makes of it", body: `{"name":null,"on":null,"count":null,"parts":null,"data":null}`,
			want: demoInput{Data: json.RawMessage("null")}},
		{name: "optional null", body: `{"secret":null,"tags":null}`,
			want: demoInput{Secret: Optional[string]{Set: true, Null: true}, Tags: Optional[[]string]{Set: true, Null: true}}},
		{name: "optional empty", body: `{"secret":"","tags":[]}`,
			want: demoInput{Secret: Optional[string]{Set: true}, Tags: Optional[[]string]{Value: []string{}, Set: true}}},
		{name: "unknown keys, sorted, and nothing else read", body: `{"name":5,"colour":1,"Name":"x","-":1,"Hidden":"h"}`,
			errs: []string{"-: unknown field", "Hidden: unknown field", "Name: unknown field", "colour: unknown field"}},
		{name: "a string", body: `{"name":5}`, errs: []string{"name: must be a string"}},
		{name: "a boolean", body: `{"on":"yes"}`, errs: []string{"on: must be true or false"}},
		{name: "an integer", body: `{"count":1.5}`, errs: []string{"count: must be an integer"}},
		{name: "an integer too large for int", body: `{"count":1e30}`, errs: []string{"count: must be an integer"}},
		{name: "a bounded integer as a string", body: `{"status":"200"}`, errs: []string{"status: must be an integer from 200 to 599"}},
		{name: "a bounded integer above", body: `{"status":600}`, errs: []string{"status: must be an integer from 200 to 599"}},
		{name: "a bounded integer below", body: `{"status":199}`, errs: []string{"status: must be an integer from 200 to 599"}},
		{name: "a bounded integer null is zero", body: `{"status":null}`, errs: []string{"status: must be an integer from 200 to 599"}},
		{name: "an optional string", body: `{"secret":[]}`, errs: []string{"secret: must be a string"}},
		{name: "an array of strings", body: `{"tags":[1]}`, errs: []string{"tags: must be an array of strings"}},
		{name: "an object", body: `{"part":5}`, errs: []string{"part: must be an object with kind and an optional note"}},
		{name: "an object null", body: `{"part":null}`, errs: []string{"part: must be an object with kind and an optional note"}},
		{name: "inside an object", body: `{"part":{"kind":1}}`, errs: []string{"part.kind: must be a string"}},
		{name: "unknown inside an object", body: `{"part":{"kind":"k","note":2,"x":1}}`, errs: []string{"part.x: unknown field"}},
		{name: "an array of objects", body: `{"parts":{}}`, errs: []string{"parts: must be an array of parts"}},
		{name: "items named by position", body: `{"parts":[{"kind":"a"},3,null,{"kind":"b","y":1},{"kind":[]}]}`,
			errs: []string{"parts[1]: must be an object with kind and an optional note",
				"parts[2]: must be an object with kind and an optional note", "parts[3].y: unknown field", "parts[4].kind: must be a string"}},
		{name: "in field order", body: `{"parts":[1],"on":"x","name":5}`,
			errs: []string{"name: must be a string", "on: must be true or false", "parts[0]: must be an object with kind and an optional note"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var obj object
			if err := json.Unmarshal([]byte(tc.body), &obj); err != nil {
				t.Fatal(err)
			}
			var got demoInput
			verr := &models.ValidationError{}
			decodeFields(obj, reflect.ValueOf(&got).Elem(), "", verr)
			var errs []string
			for _, e := range verr.Errors {
				errs = append(errs, e.Field+": "+e.Message)
			}
			if strings.Join(errs, "\n") != strings.Join(tc.errs, "\n") {
				t.Fatalf("errors\n%s\nwant\n%s", strings.Join(errs, "\n"), strings.Join(tc.errs, "\n"))
			}
			if tc.errs == nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestObjectMessageCallsFieldsOptionalOnlyBesideRequiredOnes(t *testing.T) {
	type flat struct {
		A string `json:"a"`
		B string `json:"b"`
		C string `json:"c"`
	}
	type one struct {
		A string `json:"a"`
	}
	for typ, want := range map[reflect.Type]string{
		reflect.TypeFor[flat]():     "must be an object with a, b and c",
		reflect.TypeFor[one]():      "must be an object with a",
		reflect.TypeFor[demoPart](): "must be an object with kind and an optional note",
	} {
		if got := objectMessage(typ); got != want {
			t.Errorf("%s: %q, want %q", typ, got, want)
		}
	}
}

func TestAFieldTheDecoderCannotCheckIsRefusedAtOnce(t *testing.T) {
	type withMap struct {
		Labels map[string]string `json:"labels"`
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "labels") {
			t.Errorf("recovered %v, want a panic naming the field", r)
		}
	}()
	fieldsOf(reflect.TypeFor[withMap]())
}
