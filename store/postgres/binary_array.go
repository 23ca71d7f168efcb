package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Column arrays in PostgreSQL's binary format, written by this package.
//
// A publish of 100 events, a record of 500 attempts or a group of captures sends each column
// as one array parameter (insert.go), 100 KB to 500 KB together. pgx encodes an array element
// by element through its generic plans, into a buffer it shrinks back to 256 bytes after
// every statement, so each of these statements grew it again step by step, copying its bytes
// over and over: pgx's encoding took 5% of the CPU of the bench's process (Hookrelay, its load
// and its sink) in a PostgreSQL batch phase. A binaryArray knows its size before it is
// written, makes room for all the arrays of its statement at once, and writes each element
// with a copy or a fixed-width integer.
//
// pgx looks encoders up by the parameter's type, so each connection's type map gets the array
// types below wrapped (registerBinaryArrays, run as each connection opens): a binaryArray is
// written as it is, and every other value goes to pgx's own array codec, unchanged.

// binaryArrayTypes are the column types written this way: the array's OID, its element's,
// and the element's width in bytes (0: as long as the value).
var binaryArrayTypes = map[string]struct {
	array, elem uint32
	width       int
}{
	"text":                     {pgtype.TextArrayOID, pgtype.TextOID, 0},
	"bytea":                    {pgtype.ByteaArrayOID, pgtype.ByteaOID, 0},
	"bigint":                   {pgtype.Int8ArrayOID, pgtype.Int8OID, 8},
	"integer":                  {pgtype.Int4ArrayOID, pgtype.Int4OID, 4},
	"smallint":                 {pgtype.Int2ArrayOID, pgtype.Int2OID, 2},
	"boolean":                  {pgtype.BoolArrayOID, pgtype.BoolOID, 1},
	"timestamp with time zone": {pgtype.TimestamptzArrayOID, pgtype.TimestamptzOID, 8},
}

// binaryArray is a column's values (a pgArray) to be written as a one-dimensional array of
// elem: n of them, null if one is NULL, size bytes in all. reserve is the room to make in
// pgx's buffer before writing: on the first array of a statement, the size of all of them.
type binaryArray struct {
	a       binaryWriter
	elem    uint32
	width   int
	n       int
	null    bool
	size    int
	reserve int
}

// binaryWriter is a pgArray that can write itself in the binary format.
type binaryWriter interface {
	// elements is the count of values, whether one is NULL, and the bytes of the elements
	// (with their length words) for elements of width bytes (0: variable).
	elements(width int) (n int, null bool, size int)
	// appendElements appends each element: its length (-1 for NULL), then its bytes.
	appendElements(buf []byte, width int) ([]byte, error)
}

// arrayHeader is the fixed part of a one-dimensional array: dimensions, the null flag, the
// element type, and the dimension's length and lower bound.
const arrayHeader = 20

func newBinaryArray(w binaryWriter, elem uint32, width int) *binaryArray {
	b := &binaryArray{a: w, elem: elem, width: width}
	var size int
	b.n, b.null, size = w.elements(width)
	b.size = arrayHeader + size
	if b.n == 0 {
		b.size = arrayHeader - 8 // no dimension: the empty array
	}
	return b
}

func (b *binaryArray) appendTo(buf []byte) ([]byte, error) {
	buf = slices.Grow(buf, max(b.reserve, b.size))
	if b.n == 0 {
		buf = binary.BigEndian.AppendUint32(buf, 0)
		buf = binary.BigEndian.AppendUint32(buf, 0)
		return binary.BigEndian.AppendUint32(buf, b.elem), nil
	}
	buf = binary.BigEndian.AppendUint32(buf, 1)
	var flag uint32
	if b.null {
		flag = 1
	}
	buf = binary.BigEndian.AppendUint32(buf, flag)
	buf = binary.BigEndian.AppendUint32(buf, b.elem)
	buf = binary.BigEndian.AppendUint32(buf, uint32(b.n))
	buf = binary.BigEndian.AppendUint32(buf, 1)
	return b.a.appendElements(buf, b.width)
}

// binaryArrays returns the arrays as the parameters of one statement: binaryArrays for the
// types in binaryArrayTypes, pgx's own values for any other, the first binaryArray making room
// for all of them.
func binaryArrays(arrays []pgArray, pgTypes []string) []any {
	params := make([]any, len(arrays))
	var first *binaryArray
	total := 0
	for c, a := range arrays {
		t, ok := binaryArrayTypes[pgTypes[c]]
		w, writes := a.(binaryWriter)
		if !ok || !writes {
			params[c] = a.value()
			continue
		}
		b := newBinaryArray(w, t.elem, t.width)
		total += b.size
		if first == nil {
			first = b
		}
		params[c] = b
	}
	if first != nil {
		first.reserve = total
	}
	return params
}

func (a *valArray[T]) elements(width int) (n int, null bool, size int) {
	strs, _ := any(a.vals).([]string)
	for i := range a.vals {
		size += 4
		switch {
		case a.null != nil && a.null[i]:
			null = true
		case strs != nil:
			size += len(strs[i])
		default:
			size += width
		}
	}
	return len(a.vals), null, size
}

func (a *valArray[T]) appendElements(buf []byte, width int) ([]byte, error) {
	isNull := func(i int) bool { return a.null != nil && a.null[i] }
	const null = math.MaxUint32 // a length of -1
	switch vals := any(a.vals).(type) {
	case []string:
		for i, v := range vals {
			if isNull(i) {
				buf = binary.BigEndian.AppendUint32(buf, null)
				continue
			}
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
			buf = append(buf, v...)
		}
	case []bool:
		for i, v := range vals {
			if isNull(i) {
				buf = binary.BigEndian.AppendUint32(buf, null)
				continue
			}
			b := byte(0)
			if v {
				b = 1
			}
			buf = append(binary.BigEndian.AppendUint32(buf, 1), b)
		}
	case []time.Time:
		// Microseconds since 2000-01-01 UTC, as pgx writes a timestamptz.
		const y2k = 946684800 * 1_000_000
		for i, v := range vals {
			if isNull(i) {
				buf = binary.BigEndian.AppendUint32(buf, null)
				continue
			}
			buf = binary.BigEndian.AppendUint32(buf, 8)
			buf = binary.BigEndian.AppendUint64(buf, uint64(v.UnixMicro()-y2k))
		}
	case []int64:
		for i, v := range vals {
			if isNull(i) {
				buf = binary.BigEndian.AppendUint32(buf, null)
				continue
			}
			buf = binary.BigEndian.AppendUint32(buf, uint32(width))
			switch {
			case width == 8:
				buf = binary.BigEndian.AppendUint64(buf, uint64(v))
			case width == 4 && v >= math.MinInt32 && v <= math.MaxInt32:
				buf = binary.BigEndian.AppendUint32(buf, uint32(int32(v)))
			case width == 2 && v >= math.MinInt16 && v <= math.MaxInt16:
				buf = binary.BigEndian.AppendUint16(buf, uint16(int16(v)))
			default:
				return nil, fmt.Errorf("%d does not fit an integer of %d bytes", v, width)
			}
		}
	default:
		return nil, fmt.Errorf("no binary form for %T", a.vals)
	}
	return buf, nil
}

func (a *bytesArray) elements(int) (n int, null bool, size int) {
	size = 4 * len(a.vals)
	for _, v := range a.vals {
		if v == nil {
			null = true
		}
		size += len(v)
	}
	return len(a.vals), null, size
}

func (a *bytesArray) appendElements(buf []byte, _ int) ([]byte, error) {
	for _, v := range a.vals {
		if v == nil {
			buf = binary.BigEndian.AppendUint32(buf, math.MaxUint32)
			continue
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
		buf = append(buf, v...)
	}
	return buf, nil
}

// registerBinaryArrays wraps conn's codecs of the array types in binaryArrayTypes so that a
// binaryArray parameter is written as it is.
func registerBinaryArrays(_ context.Context, conn *pgx.Conn) error {
	m := conn.TypeMap()
	for _, t := range binaryArrayTypes {
		pt, ok := m.TypeForOID(t.array)
		if !ok {
			return fmt.Errorf("postgres: no type for OID %d", t.array)
		}
		if _, done := pt.Codec.(binaryArrayCodec); done {
			continue
		}
		m.RegisterType(&pgtype.Type{Name: pt.Name, OID: pt.OID, Codec: binaryArrayCodec{pt.Codec}})
	}
	return nil
}

// binaryArrayCodec is an array type's codec that also writes binaryArrays.
type binaryArrayCodec struct{ pgtype.Codec }

func (c binaryArrayCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(*binaryArray); ok && format == pgtype.BinaryFormatCode {
		return binaryArrayPlan{}
	}
	return c.Codec.PlanEncode(m, oid, format, value)
}

type binaryArrayPlan struct{}

func (binaryArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	return value.(*binaryArray).appendTo(buf)
}
