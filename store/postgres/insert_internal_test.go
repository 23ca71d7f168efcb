package postgres

import (
	"reflect"
	"testing"
	"time"
)

// Each column's values become the slice pgx encodes to that column's array type: a []T when
// the column holds no NULL (encoded without reflection), a []*T with nil as NULL when it does;
// a value of another type is refused, naming what was given, instead of being sent as
// something else.
func TestPGArraysCarryEachColumnsValuesAndNulls(t *testing.T) {
	at := time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)
	cases := []struct {
		pgType string
		in     []any
		want   any
	}{
		{"text", []any{"a", nil, ""}, []*string{ptr("a"), nil, ptr("")}},
		{"text", []any{nil, "x"}, []*string{nil, ptr("x")}},
		{"text", []any{"a", ""}, []string{"a", ""}},
		{"bigint", []any{int64(7), nil, 3, int32(-1)}, []*int64{ptr(int64(7)), nil, ptr(int64(3)), ptr(int64(-1))}},
		{"integer", []any{int64(200), 3}, []int64{200, 3}},
		{"boolean", []any{true, nil, false}, []*bool{ptr(true), nil, ptr(false)}},
		{"boolean", []any{false}, []bool{false}},
		{"timestamp with time zone", []any{at, nil}, []*time.Time{&at, nil}},
		{"timestamp with time zone", []any{at}, []time.Time{at}},
		{"bytea", []any{[]byte("{}"), nil, []byte(nil), "x"}, [][]byte{[]byte("{}"), nil, {}, []byte("x")}},
	}
	for _, c := range cases {
		a := newPGArray(c.pgType, len(c.in))
		for _, v := range c.in {
			if err := a.add(v); err != nil {
				t.Fatalf("%s: add %#v: %v", c.pgType, v, err)
			}
		}
		if got := a.value(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %#v, want %#v", c.pgType, got, c.want)
		}
	}
	for pgType, wrong := range map[string]any{"text": 1, "bigint": "1", "boolean": "true", "timestamp with time zone": "2025-01-15", "bytea": 1.5} {
		if err := newPGArray(pgType, 1).add(wrong); err == nil {
			t.Errorf("%s took %#v", pgType, wrong)
		}
	}
}

func ptr[T any](v T) *T { return &v }
