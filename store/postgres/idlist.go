package postgres

import (
	"database/sql/driver"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// textArray binds a list of strings as one text[] parameter (col = ANY(?)), which gorm
// leaves whole because it is a driver.Valuer. A list expanded into IN (?, ?, …) makes a new
// statement text for every length: pgx prepares each new text with a round trip of its own,
// the server parses and plans it, and lists of 1 to 512 ids crowd the common statements out
// of pgx's cache of 512. One array keeps one statement, prepared once per connection.
//
// pgx encodes it as an array (pgtype.ArrayGetter below), in binary, element by element. The
// driver.Valuer is there for gorm only, which leaves a Valuer whole where it would expand a
// slice: pgx prefers an array's codec to a Valuer, and given only the Valuer it first tried
// to send the literal as the binary array (an error, formatted with fmt), then parsed the
// literal back into elements and encoded those. With 50 endpoints spilled, every publish
// sends the 50 spills it locks so (insert.go), and that round about was a tenth of the
// process's CPU (docs/performance.md).
type textArray []string

var _ pgtype.ArrayGetter = textArray(nil)

// Dimensions is one dimension of len(a) elements. An empty list, nil included, is the empty
// array (no dimensions), as its literal was, never NULL: `= ANY(NULL)` and a FOREACH over
// NULL do not mean "none".
func (a textArray) Dimensions() []pgtype.ArrayDimension {
	if len(a) == 0 {
		return []pgtype.ArrayDimension{}
	}
	return []pgtype.ArrayDimension{{Length: int32(len(a)), LowerBound: 1}}
}

// Index is the i-th element.
func (a textArray) Index(i int) any { return a[i] }

// IndexType is what Index returns.
func (a textArray) IndexType() any { return "" }

// Value is the array's literal, every element quoted.
func (a textArray) Value() (driver.Value, error) {
	var sb strings.Builder
	sb.Grow(2 + len(a)*40)
	sb.WriteByte('{')
	for i, s := range a {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('"')
		for j := 0; j < len(s); j++ {
			if s[j] == '"' || s[j] == '\\' {
				sb.WriteByte('\\')
			}
			sb.WriteByte(s[j])
		}
		sb.WriteByte('"')
	}
	sb.WriteByte('}')
	return sb.String(), nil
}
