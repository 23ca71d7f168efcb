package postgres

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

// A list of ids is encoded by pgx's array codec, as a []string is, not through its
// driver.Valuer: that way round pgx failed on the literal first (an error formatted each
// time), parsed it back into elements and encoded those, a tenth of the process's CPU with
// 50 spills locked by every publish.
func TestTextArrayIsEncodedAsAnArray(t *testing.T) {
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = fmt.Sprintf("wh_%032d", i)
	}
	m := pgtype.NewMap()
	want, err := m.Encode(pgtype.TextArrayOID, pgtype.BinaryFormatCode, ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Encode(pgtype.TextArrayOID, pgtype.BinaryFormatCode, textArray(ids), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("a textArray encodes differently from the []string it holds")
	}
	buf := make([]byte, 0, 4096)
	plain := testing.AllocsPerRun(50, func() { _, _ = m.Encode(pgtype.TextArrayOID, pgtype.BinaryFormatCode, ids, buf[:0]) })
	list := testing.AllocsPerRun(50, func() { _, _ = m.Encode(pgtype.TextArrayOID, pgtype.BinaryFormatCode, textArray(ids), buf[:0]) })
	// The two may differ by the boxing of a value or two, not by an allocation per element.
	if list > plain+4 {
		t.Errorf("encoding 50 ids as a textArray allocated %.0f times, as a []string %.0f: not the array codec", list, plain)
	}
}
