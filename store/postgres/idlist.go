package postgres

import (
	"database/sql/driver"
	"strings"
)

// textArray binds a list of strings as one text[] parameter (col = ANY(?)), which gorm
// leaves whole because it is a driver.Valuer. A list expanded into IN (?, ?, …) makes a new
// statement text for every length: pgx prepares each new text with a round trip of its own,
// the server parses and plans it, and lists of 1 to 512 ids crowd the common statements out
// of pgx's cache of 512. One array keeps one statement, prepared once per connection.
type textArray []string

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
