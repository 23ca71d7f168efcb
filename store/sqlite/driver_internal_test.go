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
	s, err := Open(ctx, filepath.Join(t.TempDir(), "conns.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
