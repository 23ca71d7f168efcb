package api

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/models"
)

type demoPart struct {
	Kind Optional[string] `json:"kind" validate:"required"`
	Note string           `json:"note"`
}

type demoInput struct {
	Name   string               `json:"name"`
	On     Optional[bool]       `json:"on"`
	Count  Optional[int]        `json:"count"`
	Status Optional[int]        `json:"status" minimum:"200" maximum:"599"`
	Tags   Optional[[]string]   `json:"tags"`
	Data   json.RawMessage      `json:"data"`
	Part   Optional[demoPart]   `json:"part"`
	Parts  []Optional[demoPart] `json:"parts"`
	Plain  []demoPart           `json:"plain"`
	Hidden string               `json:"-"`
}

// report reads every field as a handler would, in field order, adding what did not fit.
func (in *demoInput) report(verr *models.ValidationError) {
	in.On.get(verr, "on")
	in.Count.get(verr, "count")
	in.Status.get(verr, "status")
	in.Tags.get(verr, "tags")
	part, _ := in.Part.get(verr, "part")
	part.Kind.get(verr, "part.kind")
	for i := range in.Parts {
		path := "parts[" + strconv.Itoa(i) + "]"
		if p, ok := in.Parts[i].get(verr, path); ok {
			p.Kind.get(verr, path+".kind")
		}
	}
}

func sent[T any](v T) Optional[T] { return Optional[T]{Set: true, value: v} }

func TestDecodeFieldsNamesEveryRefusedField(t *testing.T) {
	cases := []struct {
		name, body string
		want       *demoInput // compared when given
		errs       []string   // "path: message", in the order report finds them
	}{
		{name: "nothing sent", body: `{}`, want: &demoInput{}},
		{name: "every field", body: `{"name":"n","on":true,"count":-3,"status":599,"tags":["a"],"data":[1, {"x" : null}],` +
			`"part":{"kind":"k"},"parts":[{"kind":"a","note":"b"}],"plain":[{"note":"c"}]}`,
			want: &demoInput{Name: "n", On: sent(true), Count: sent(-3), Status: sent(599), Tags: sent([]string{"a"}),
				Data: json.RawMessage(`[1, {"x" : null}]`), Part: sent(demoPart{Kind: sent("k")}),
				Parts: []Optional[demoPart]{sent(demoPart{Kind: sent("a"), Note: "b"})}, Plain: []demoPart{{Note: "c"}}}},
		{name: "escaped and non-ASCII strings", body: `{"name":"a\"b\u00e9\n","tags":["é"]}`,
			want: &demoInput{Name: "a\"bé\n", Tags: sent([]string{"é"})}},
		{name: "null is what encoding/json makes of it", body: `{"name":null,"on":null,"count":null,"tags":null,"parts":null,"data":null}`,
			want: &demoInput{On: Optional[bool]{Set: true, Null: true}, Count: Optional[int]{Set: true, Null: true},
				Tags: Optional[[]string]{Set: true, Null: true}, Data: json.RawMessage("null")}},
		{name: "empty array", body: `{"tags":[],"parts":[]}`, want: &demoInput{Tags: sent([]string{}), Parts: []Optional[demoPart]{}}},
		{name: "unknown keys, sorted; known ones still read", body: `{"name":5,"colour":1,"Name":"x","-":1,"Hidden":"h"}`,
			errs: []string{"-: unknown field", "Hidden: unknown field", "Name: unknown field", "colour: unknown field", "name: must be a string"}},
		{name: "a string", body: `{"name":5}`, errs: []string{"name: must be a string"}},
		{name: "a boolean", body: `{"on":"yes"}`, errs: []string{"on: must be true or false"}},
		{name: "an integer", body: `{"count":1.5}`, errs: []string{"count: must be an integer"}},
		{name: "an integer too large for int", body: `{"count":1e30}`, errs: []string{"count: must be an integer"}},
		{name: "a bounded integer as a string", body: `{"status":"200"}`, errs: []string{"status: must be an integer from 200 to 599"}},
		{name: "a bounded integer above", body: `{"status":600}`, errs: []string{"status: must be an integer from 200 to 599"}},
		{name: "a bounded integer below", body: `{"status":199}`, errs: []string{"status: must be an integer from 200 to 599"}},
		{name: "a bounded integer null is zero", body: `{"status":null}`, errs: []string{"status: must be an integer from 200 to 599"}},
		{name: "an array of strings", body: `{"tags":[1]}`, errs: []string{"tags: must be an array of strings"}},
		{name: "an object", body: `{"part":5}`, errs: []string{"part: must be an object with kind and an optional note"}},
		{name: "an object null", body: `{"part":null}`, errs: []string{"part: must be an object with kind and an optional note"}},
		{name: "inside an object", body: `{"part":{"kind":1,"note":2}}`, errs: []string{"part.note: must be a string", "part.kind: must be a string"}},
		{name: "unknown inside an object", body: `{"part":{"kind":1,"x":1}}`, errs: []string{"part.x: unknown field", "part.kind: must be a string"}},
		{name: "an array of objects", body: `{"parts":{}}`, errs: []string{"parts: must be an array of parts"}},
		{name: "items named by position", body: `{"parts":[{"kind":"a"},3,null,{"kind":"b","y":1},{"kind":[]}]}`,
			errs: []string{"parts[1]: must be an object with kind and an optional note",
				"parts[2]: must be an object with kind and an optional note", "parts[3].y: unknown field", "parts[4].kind: must be a string"}},
		{name: "plain items are refused as they are read", body: `{"plain":[{"note":1},2],"on":"x"}`,
			errs: []string{"plain[0].note: must be a string", "plain[1]: must be an object with kind and an optional note",
				"on: must be true or false"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var obj object
			if err := json.Unmarshal([]byte(tc.body), &obj); err != nil {
				t.Fatal(err)
			}
			got := &demoInput{}
			verr := &models.ValidationError{}
			decodeFields(obj, reflect.ValueOf(got).Elem(), "", verr)
			got.report(verr)
			var errs []string
			for _, e := range verr.Errors {
				errs = append(errs, e.Field+": "+e.Message)
			}
			if strings.Join(errs, "\n") != strings.Join(tc.errs, "\n") {
				t.Fatalf("errors\n%s\nwant\n%s", strings.Join(errs, "\n"), strings.Join(tc.errs, "\n"))
			}
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
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
	type late struct {
		A string `json:"a"`
		B string `json:"b" validate:"required"`
	}
	for typ, want := range map[reflect.Type]string{
		reflect.TypeFor[flat]():     "must be an object with a, b and c",
		reflect.TypeFor[one]():      "must be an object with a",
		reflect.TypeFor[demoPart](): "must be an object with kind and an optional note",
		reflect.TypeFor[late]():     "must be an object with b and an optional a",
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
