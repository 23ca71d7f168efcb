package models

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/race"
)

// scanValid reads data as one JSON value with nothing but space around it.
func scanValid(data []byte) bool {
	s := jsonScanner{data: data}
	s.skipSpace()
	if !s.value(0) {
		return false
	}
	s.skipSpace()
	return s.i == len(data)
}

func TestScannerAcceptsExactlyWhatEncodingJSONAccepts(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	inputs := []string{
		``, ` `, `{}`, `[]`, ` { } `, `[ ]`, `{"a":1}`, `{"a" : [ 1 , 2 ] , "b" : { } }`, `{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a"}`,
		`{"a":}`, `{a:1}`, `{'a':1}`, `[1 2]`, `{"a":1 "b":2}`, `{"a":1}}`, `[[]`, `[]]`, `{"a":1]`, `[1}`, "\f[]", "[\v]", "\u00a0[]",
		`0`, `-0`, `01`, `-01`, `1.`, `.1`, `1.5`, `1e3`, `1E+3`, `1e-3`, `1e`, `1e+`, `-`, `+1`, `1.5e3`, `0x1`, `Infinity`, `NaN`,
		`123456789012345678901234567890`, `-1.0e-0`, `1ee3`, `1.e3`, `00`,
		`true`, `false`, `null`, `tru`, `truex`, `nul`, `NULL`, `True`, `[true,false,null]`, `[truefalse]`,
		`""`, `"a"`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u0041"`, `"\uD83D\uDE00"`, `"\ud800"`, `"\uDFFF"`, `"\u12"`, `"\u12g4"`,
		`"\x"`, `"\'"`, `"\U0041"`, `"\`, `"abc`, `"` + "\x00" + `"`, `"` + "\x1f" + `"`, `"` + "\x7f" + `"`, `"` + "\xff\xfe" + `"`,
		`"é 中文 🎉"`, `"` + "\u2028" + `"`, `"a"b"`, `"a" "b"`,
		deep(10000), deep(10001), `{"a":` + deep(9999) + `}`, `{"a":` + deep(10000) + `}`,
	}
	for _, in := range inputs {
		if got, want := scanValid([]byte(in)), json.Valid([]byte(in)); got != want {
			t.Errorf("scanner takes %.60q as valid: %v; encoding/json: %v", in, got, want)
		}
	}
}

func TestPlainPrefixStopsAtTheFirstByteThatAStringDoesNotHoldAsItIs(t *testing.T) {
	for c := range 256 {
		special := c < 0x20 || c == '"' || c == '\\' || c >= 0x80
		for at := range 20 {
			b := bytes.Repeat([]byte("a"), 20)
			b[at] = byte(c)
			want := len(b)
			if special {
				want = at
			}
			if got := plainPrefix(b); got != want {
				t.Errorf("plainPrefix with %#x at %d = %d, want %d", c, at, got, want)
			}
		}
	}
}

// The scanner must agree with encoding/json on what is valid, and on the members of the
// objects that it takes apart; it may only decline objects whose keys have escapes or bytes
// beyond ASCII.
func FuzzJSONScanner(f *testing.F) {
	for _, s := range append(seedData(), seedBodies()...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := scanValid(data), json.Valid(data); got != want {
			t.Fatalf("scanner takes %q as valid: %v; encoding/json: %v", data, got, want)
		}
		s := jsonScanner{data: data}
		s.skipSpace()
		if s.peek() != '{' {
			return
		}
		start := s.i
		obj, ok := s.object(1, nil)
		var want map[string]json.RawMessage
		if !ok {
			if json.NewDecoder(bytes.NewReader(data[start:])).Decode(&want) == nil && !bytes.ContainsFunc(data, func(r rune) bool { return r == '\\' || r >= 0x80 }) {
				t.Fatalf("scanner declined the object %q", data)
			}
			return
		}
		if err := json.Unmarshal(data[start:s.i], &want); err != nil {
			t.Fatalf("scanner took %q as an object: %v", data[start:s.i], err)
		}
		got := map[string]json.RawMessage{}
		for _, m := range obj {
			got[string(m.key)] = m.raw
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("scanner read %q as %q, encoding/json as %q", data[start:s.i], got, want)
		}
	})
}

// The bodies Hookrelay writes, and data as publishers send it, take the scanner's path: the
// fallback to encoding/json would allocate.
func TestTheUsualBodiesAreTakenApartWithoutEncodingJSON(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector's instrumentation allocates unevenly")
	}
	for _, et := range Catalogue {
		body := et.Example(time.Date(2025, 1, 15, 10, 31, 0, 0, time.UTC))
		if n := testing.AllocsPerRun(100, func() { CheckDelivered(body) }); n != 0 {
			t.Errorf("CheckDelivered(%s) allocates %.0f times", body, n)
		}
		data := body[bytes.Index(body, []byte(`"data":`))+7 : len(body)-1]
		// The body it returns, nothing else.
		if n := testing.AllocsPerRun(100, func() { _, _ = et.BuildBody(data, time.Now()) }); n != 1 {
			t.Errorf("BuildBody(%s) allocates %.0f times", data, n)
		}
	}
}
