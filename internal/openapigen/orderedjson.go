package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// documentJSON is how the committed documents are written: indented, without HTML escaping,
// keys sorted, except inside an example, which keeps the order it was given in. A delivered
// body's keys come in a fixed order (event, timestamp, data; the catalogue's fields), and its
// example must show that order; everything else is sorted so the output depends on the source
// alone.
func documentJSON(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := readOrdered(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("trailing data after the document")
	}
	var compact bytes.Buffer
	if err := writeOrdered(&compact, v, false, false); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// member is one key of a JSON object, in the order it was read.
type member struct {
	key   string
	value any
}

type orderedObject []member

func readOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := orderedObject{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := readOrdered(dec)
				if err != nil {
					return nil, err
				}
				obj = append(obj, member{k.(string), v})
			}
			_, err := dec.Token()
			return obj, err
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := readOrdered(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			_, err := dec.Token()
			return arr, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return t, nil
	}
}

// writeOrdered writes v compactly; keep is true inside an example (an "example" value, or the
// "value" of a named example), where keys stay in their order. names is true for an object
// whose keys are names, not keywords (a schema's properties: one may be called "example").
func writeOrdered(buf *bytes.Buffer, v any, keep, names bool) error {
	switch x := v.(type) {
	case orderedObject:
		members := x
		if !keep {
			members = append(orderedObject(nil), x...)
			sort.SliceStable(members, func(i, j int) bool { return members[i].key < members[j].key })
		}
		buf.WriteByte('{')
		for i, m := range members {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeScalar(buf, m.key); err != nil {
				return err
			}
			buf.WriteByte(':')
			example := !names && (m.key == "example" || (m.key == "value" && x.has("summary")))
			if err := writeOrdered(buf, m.value, keep || example, !keep && !names && m.key == "properties"); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeOrdered(buf, e, keep, false); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	default:
		return writeScalar(buf, x)
	}
	return nil
}

func (o orderedObject) has(key string) bool {
	for _, m := range o {
		if m.key == key {
			return true
		}
	}
	return false
}

func writeScalar(buf *bytes.Buffer, v any) error {
	if n, ok := v.(json.Number); ok {
		buf.WriteString(n.String())
		return nil
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode's newline
	return nil
}
