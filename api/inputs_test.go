package api_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/api"
)

// wrongType is one field of an input sent a value of the wrong JSON type.
type wrongType struct{ field, body string }

// wrongTypes lists, for every field of the input type t (nested objects and array items too),
// a JSON value of the wrong type, wrapped in the objects and arrays that lead to it.
func wrongTypes(t reflect.Type) []wrongType {
	var out []wrongType
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		wrap := func(field, value string) wrongType {
			return wrongType{field, `{"` + name + `":` + value + `}`}
		}
		switch ft := unwrapOptional(t.Field(i).Type); {
		case ft == reflect.TypeFor[json.RawMessage]():
		case ft.Kind() == reflect.Struct:
			out = append(out, wrap(name, `5`))
			for _, w := range wrongTypes(ft) {
				out = append(out, wrap(name+"."+w.field, w.body))
			}
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, wrap(name, `"x"`), wrap(name+"[0]", `[5]`))
			for _, w := range wrongTypes(unwrapOptional(ft.Elem())) {
				out = append(out, wrap(name+"[0]."+w.field, `[`+w.body+`]`))
			}
		case ft.Kind() == reflect.String:
			out = append(out, wrap(name, `5`))
		default: // booleans, numbers, arrays of strings
			out = append(out, wrap(name, `"x"`))
		}
	}
	return out
}

func unwrapOptional(t reflect.Type) reflect.Type {
	if t.PkgPath() == reflect.TypeFor[api.Optional[int]]().PkgPath() && strings.HasPrefix(t.Name(), "Optional[") {
		v, _ := t.FieldByName("value")
		return v.Type
	}
	return t
}

// A handler reads each field of its input with get, which reports a value of the wrong type;
// one that skipped a field would take such a value as the zero value. So every field of every
// input is sent one, and the problem must name it.
func TestEveryInputFieldRefusesAValueOfTheWrongType(t *testing.T) {
	e := newEnv(t, withoutDispatcher())
	hook := e.createWebhook(validHook)
	bin := mustJSON[struct{ ID string }](t, e.post("/api/v1/inspector/bins", `{}`), http.StatusCreated)
	e.do(req{method: "POST", path: "/inspect/" + bin.ID, body: `{}`, noAuth: true})
	captures := mustJSON[list[struct{ ID string }]](t, e.get("/api/v1/inspector/bins/"+bin.ID+"/requests"), http.StatusOK)
	if len(captures.Data) != 1 {
		t.Fatalf("%d captures, want 1", len(captures.Data))
	}
	inputs := []struct {
		method, path string
		input        any
	}{
		{"POST", "/api/v1/webhooks", api.WebhookInput{}},
		{"PATCH", "/api/v1/webhooks/" + hook.ID, api.WebhookInput{}},
		{"POST", "/api/v1/webhooks/" + hook.ID + "/test", api.TestInput{}},
		{"POST", "/api/v1/webhooks/" + hook.ID + "/replay", api.ReplayInput{}},
		{"POST", "/api/v1/events", api.EventInput{}},
		{"POST", "/api/v1/events/batch", api.BatchInput{}},
		{"POST", "/api/v1/session", api.SessionInput{}},
		{"POST", "/api/v1/api-keys", api.APIKeyInput{}},
		{"POST", "/api/v1/inspector/bins", api.BinInput{}},
		{"PATCH", "/api/v1/inspector/bins/" + bin.ID, api.BinInput{}},
		{"POST", "/api/v1/inspector/bins/" + bin.ID + "/requests/" + captures.Data[0].ID + "/forward", api.ForwardInput{}},
	}
	for _, in := range inputs {
		var cases []apiCase
		for _, w := range wrongTypes(reflect.TypeOf(in.input)) {
			cases = append(cases, apiCase{name: w.field + " " + w.body, req: req{method: in.method, path: in.path, body: w.body},
				status: http.StatusUnprocessableEntity, problemField: w.field})
		}
		t.Run(in.method+" "+in.path, func(t *testing.T) { e.withT(t).run(t, cases) })
	}
}
