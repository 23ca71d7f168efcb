package models

import (
	"encoding/json"
	"unicode/utf8"
)

// A small JSON scanner for the two hot paths that take a JSON object apart (BuildBody on every
// publish, CheckDelivered on every inspector capture). encoding/json validates the whole input
// with its byte-at-a-time state machine, then decodes it again through reflection into a map;
// this reads the object once, keeps every value as written, and allocates nothing (but for
// values nested more than 32 deep).
//
// It accepts exactly what encoding/json accepts (RFC 8259, any bytes but control characters
// inside strings, at most maxDepth nested arrays and objects), but it only collects objects
// whose keys read as written: ASCII, no escapes. It declines everything else, valid or not,
// and its callers then decode with encoding/json, so that the unusual inputs (escaped or
// non-ASCII keys, invalid JSON and its error paths) keep exactly the results they had.

// member is one key of a JSON object and its value.
type member struct {
	key []byte // between the quotes
	raw []byte // the value exactly as written, without the whitespace around it
}

// maxDepth is encoding/json's limit on nested arrays and objects.
const maxDepth = 10000

type jsonScanner struct {
	data []byte
	i    int
}

// peek returns the next byte, or 0 at the end, which no caller takes for valid JSON.
func (s *jsonScanner) peek() byte {
	if s.i < len(s.data) {
		return s.data[s.i]
	}
	return 0
}

func (s *jsonScanner) skipSpace() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// object reads the object at s.i, nested depth deep (the outermost is 1), and appends its
// members to dst. It declines a key that is not plain.
func (s *jsonScanner) object(depth int, dst []member) ([]member, bool) {
	s.i++
	for first := true; ; first = false {
		key, plain, more, ok := s.member(first)
		if !ok || !plain {
			return nil, false
		}
		if !more {
			return dst, true
		}
		start := s.i
		if !s.value(depth) {
			return nil, false
		}
		dst = append(dst, member{key: key, raw: s.data[start:s.i]})
	}
}

// member reads, inside an object, up to the next member's value: the comma unless first, the
// key and the colon. more is false when it read the closing brace instead.
func (s *jsonScanner) member(first bool) (key []byte, plain, more, ok bool) {
	s.skipSpace()
	switch c := s.peek(); {
	case c == '}':
		s.i++
		return nil, true, false, true
	case c == ',' && !first:
		s.i++
		s.skipSpace()
	case !first:
		return nil, false, false, false
	}
	if s.peek() != '"' {
		return nil, false, false, false
	}
	key, plain, ok = s.str()
	if !ok {
		return nil, false, false, false
	}
	s.skipSpace()
	if s.peek() != ':' {
		return nil, false, false, false
	}
	s.i++
	s.skipSpace()
	return key, plain, true, true
}

// value skips the value at s.i, which sits inside depth arrays and objects. It keeps the
// brackets it opens on a stack of its own rather than recursing, so that a body nested ten
// thousand deep costs as many bytes, not a grown goroutine stack.
func (s *jsonScanner) value(depth int) bool {
	var buf [32]byte
	open := buf[:0]
	for {
		first := false
		switch s.peek() {
		case '[', '{':
			if depth+len(open) >= maxDepth {
				return false
			}
			open = append(open, s.data[s.i])
			s.i++
			first = true
		case '"':
			if _, _, ok := s.str(); !ok {
				return false
			}
		case 't':
			if !s.literal("true") {
				return false
			}
		case 'f':
			if !s.literal("false") {
				return false
			}
		case 'n':
			if !s.literal("null") {
				return false
			}
		default:
			if !s.number() {
				return false
			}
		}
		// Close the arrays and objects that end here, up to the next element or the end.
		for {
			if len(open) == 0 {
				return true
			}
			more, ok := s.next(open[len(open)-1], first)
			if !ok {
				return false
			}
			if more {
				break
			}
			open, first = open[:len(open)-1], false
		}
	}
}

// next reads, inside an array or object, up to its next element: the comma unless first, and
// in an object the key and the colon. more is false when it read the closing bracket instead.
func (s *jsonScanner) next(bracket byte, first bool) (more, ok bool) {
	if bracket == '{' {
		_, _, more, ok = s.member(first)
		return more, ok
	}
	s.skipSpace()
	switch c := s.peek(); {
	case c == ']':
		s.i++
		return false, true
	case first:
		return true, true
	case c == ',':
		s.i++
		s.skipSpace()
		return true, true
	}
	return false, false
}

// str reads the string at s.i and returns what lies between its quotes; plain means no escapes
// and only ASCII, so that the text is exactly what encoding/json decodes and its case folding
// is ASCII's.
func (s *jsonScanner) str() (inner []byte, plain, ok bool) {
	d := s.data
	plain = true
	for i := s.i + 1; i < len(d); i++ {
		if i += plainPrefix(d[i:]); i == len(d) {
			break
		}
		switch c := d[i]; {
		case c == '"':
			inner, s.i = d[s.i+1:i], i+1
			return inner, plain, true
		case c < 0x20:
			return nil, false, false
		case c >= utf8.RuneSelf:
			plain = false
		default: // a backslash
			plain = false
			i++
			if i == len(d) {
				return nil, false, false
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				// Any four hex digits: lone surrogates are valid syntax, decoded as U+FFFD.
				if i+4 >= len(d) || !isHex(d[i+1]) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) {
					return nil, false, false
				}
				i += 4
			default:
				return nil, false, false
			}
		}
	}
	return nil, false, false
}

// plainPrefix returns how many bytes b starts with that a JSON string holds as they are:
// ASCII but for control characters, quotes and backslashes.
func plainPrefix(b []byte) int { return plainRun(b, 0) }

// plainRun returns the end of the run of such bytes in s from i. Such text is most of a body
// (and of a JSON string written with AppendJSONString, where a byte at a time took about a
// nanosecond a byte), so it looks at eight bytes at a time, with the usual tests for a byte
// below a bound or equal to zero setting that byte's high bit.
func plainRun[S ~string | ~[]byte](s S, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(s); i += 8 {
		e := s[i : i+8] // one bounds check for the eight loads, which compile to one
		w := uint64(e[0]) | uint64(e[1])<<8 | uint64(e[2])<<16 | uint64(e[3])<<24 |
			uint64(e[4])<<32 | uint64(e[5])<<40 | uint64(e[6])<<48 | uint64(e[7])<<56
		quote, backslash := w^(ones*'"'), w^(ones*'\\')
		if (w|(w-ones*0x20)&^w|(quote-ones)&^quote|(backslash-ones)&^backslash)&highs != 0 {
			break
		}
	}
	for i < len(s) && !(s[i] < 0x20 || s[i] == '"' || s[i] == '\\' || s[i] >= utf8.RuneSelf) {
		i++
	}
	return i
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (s *jsonScanner) literal(word string) bool {
	if len(s.data)-s.i < len(word) || string(s.data[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at s.i. What follows is the
// caller's to judge: "01" is a 0 followed by a stray 1.
func (s *jsonScanner) number() bool {
	d, i := s.data, s.i
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		i = skipDigits(d, i)
	default:
		return false
	}
	if i < len(d) && d[i] == '.' {
		if j := skipDigits(d, i+1); j > i+1 {
			i = j
		} else {
			return false
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if j := skipDigits(d, i); j > i {
			i = j
		} else {
			return false
		}
	}
	s.i = i
	return true
}

func skipDigits(d []byte, i int) int {
	for i < len(d) && '0' <= d[i] && d[i] <= '9' {
		i++
	}
	return i
}

// SplitObject takes apart body when it is one JSON object with nothing after it but
// whitespace: each key, as written, to its value, as written (a slice of body), the last of
// duplicate keys winning, as json.Unmarshal into a map[string]json.RawMessage would have it.
// ok is false for anything else, and for objects the scanner declines (escaped or non-ASCII
// keys): the caller decodes those with encoding/json, which also words the errors.
func SplitObject(body []byte) (obj map[string]json.RawMessage, ok bool) {
	s := jsonScanner{data: body}
	s.skipSpace()
	if s.peek() != '{' {
		return nil, false
	}
	var buf [8]member
	members, ok := s.object(1, buf[:0])
	if !ok {
		return nil, false
	}
	s.skipSpace()
	if s.i != len(s.data) {
		return nil, false
	}
	obj = make(map[string]json.RawMessage, len(members))
	for _, m := range members {
		obj[string(m.key)] = m.raw
	}
	return obj, true
}
