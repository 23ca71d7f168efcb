package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// The store's connections, the writer's and the readers', are the stmtcache driver's, which
// keep their compiled statements (a go-sqlite connection compiles every statement anew).
func TestTheStoresConnectionsKeepTheirCompiledStatements(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	wdb, _ := s.Writer.DB()
	rdb, _ := s.Reader.DB()
	for name, db := range map[string]*sql.DB{"writer": wdb, "reader": rdb} {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.Raw(func(dc any) error {
			if got := fmt.Sprintf("%T", dc); got != "*stmtcache.conn" {
				t.Errorf("the %s's connection is a %s, not the stmtcache driver's", name, got)
			}
			return nil
		})
		c.Close()
	}
}

// A list of ids is one parameter: one statement text for any number of them, which the
// connections compile once (a text per length would crowd what they keep).
func TestIDsInIsOneStatementTextForAnyNumberOfIDs(t *testing.T) {
	s := openTemp(t)
	if err := s.Writer.Exec(`CREATE TABLE t (id TEXT PRIMARY KEY)`).Error; err != nil {
		t.Fatal(err)
	}
	all := []string{`a`, `b"c`, `d\e`, `f`}
	for _, id := range all {
		if err := s.Writer.Exec(`INSERT INTO t (id) VALUES (?)`, id).Error; err != nil {
			t.Fatal(err)
		}
	}
	one, _ := hooks{}.IDsIn("id", all[:1])
	for n := range len(all) + 1 {
		cond, arg := hooks{}.IDsIn("id", all[:n])
		if cond != one {
			t.Fatalf("%d ids: condition %q, want the same text as for one, %q", n, cond, one)
		}
		var got []string
		if err := s.Reader.Raw(`SELECT id FROM t WHERE `+cond+` ORDER BY id`, arg).Scan(&got).Error; err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(all[:n]) && !(n == 0 && len(got) == 0) {
			t.Errorf("%d ids: selected %q, want %q", n, got, all[:n])
		}
	}
}

// openTemp opens a store on a new file, closed when the test ends.
func openTemp(t *testing.T) *Driver {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
