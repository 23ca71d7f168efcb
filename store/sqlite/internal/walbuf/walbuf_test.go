package walbuf_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/glebarez/go-sqlite"
	"github.com/hookrelay/hookrelay/store/sqlite/internal/walbuf"
)

// open opens path as the store's writer does (WAL, no sync at commit, 8 KiB pages, no
// automatic checkpoints), through the VFS when through is set; one connection.
func open(t *testing.T, path string, through bool, extra ...string) *sql.DB {
	t.Helper()
	if err := walbuf.Register(); err != nil {
		t.Fatal(err)
	}
	dsn := "file:" + path + "?_pragma=page_size(8192)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(0)"
	for _, p := range extra {
		dsn += "&_pragma=" + p
	}
	if through {
		dsn += "&vfs=" + walbuf.Name
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func count(t *testing.T, db *sql.DB) (n, bytes int64) {
	t.Helper()
	if err := db.QueryRow(`SELECT count(*), coalesce(sum(length(body)), 0) FROM t`).Scan(&n, &bytes); err != nil {
		t.Fatal(err)
	}
	return n, bytes
}

func integrity(t *testing.T, db *sql.DB) {
	t.Helper()
	var ok string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check: %q, %v", ok, err)
	}
}

// insert commits rows of size bytes in one transaction.
func insert(t *testing.T, db *sql.DB, rows, size int) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for range rows {
		if _, err := tx.Exec(`INSERT INTO t (body) VALUES (?)`, bytes.Repeat([]byte{'x'}, size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// A commit of several pages reaches the log in one write, and what was written is what a
// connection through the default VFS reads.
func TestCommitIsOneWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	w := open(t, path, true)
	exec(t, w, `CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)`)
	r := open(t, path, false)

	asked0, made0 := walbuf.Stats()
	insert(t, w, 20, 1024) // about 20 KiB: three or more pages and page 1
	asked, made := walbuf.Stats()
	if asked-asked0 < 6 {
		t.Fatalf("the commit asked for %d writes; want a header and a page for each of 3 or more frames", asked-asked0)
	}
	if made-made0 != 1 {
		t.Fatalf("the commit made %d writes of %d asked, want 1", made-made0, asked-asked0)
	}
	if n, b := count(t, r); n != 20 || b != 20*1024 {
		t.Fatalf("the reader saw %d rows, %d bytes; want 20, %d", n, b, 20*1024)
	}
	for i := range 30 {
		insert(t, w, 3, 700)
		if n, _ := count(t, r); n != int64(23+3*i) {
			t.Fatalf("after commit %d the reader saw %d rows, want %d", i, n, 23+3*i)
		}
	}
	integrity(t, r)
}

// A transaction larger than the writer's page cache spills frames to the log before its
// commit, and one larger than a write carries writes in several; a rolled-back one leaves
// frames that the next commit overwrites. The data read back, through either VFS, is what was
// committed.
func TestSpillsRollbacksAndLargeCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	w := open(t, path, true, "cache_size(16)")
	exec(t, w, `CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)`)
	r := open(t, path, false)
	// About 3 MiB against a cache of 16 pages: the transaction writes pages to the log before
	// its commit and writes some of them again, so its commit rewrites their checksums.
	insert(t, w, 2000, 1500)
	if n, b := count(t, r); n != 2000 || b != 2000*1500 {
		t.Fatalf("read %d rows, %d bytes; want 2000, %d", n, b, 2000*1500)
	}
	// Pages spilled and then changed again in one transaction are written over in the log;
	// the commit then writes the headers of those frames again, the commit frame's last.
	tx, err := w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, half := range []int{0, 1} {
		if _, err := tx.Exec(`UPDATE t SET body = ? WHERE id % 2 = ?`, bytes.Repeat([]byte{'w'}, 1500), half); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// Readers read pages only; the headers matter when a log is recovered, after a crash.
	crashed := filepath.Join(t.TempDir(), "db")
	for _, suffix := range []string{"", "-wal"} {
		copyFile(t, path+suffix, crashed+suffix)
	}
	for _, db := range []*sql.DB{r, open(t, crashed, false)} {
		var ws int
		if err := db.QueryRow(`SELECT count(*) FROM t WHERE body = ?`, bytes.Repeat([]byte{'w'}, 1500)).Scan(&ws); err != nil || ws != 2000 {
			t.Fatalf("rows rewritten: %d, %v; want 2000", ws, err)
		}
	}
	// Commits of one to twenty pages: the commit frame's header and page fall into one
	// write or into two.
	for i := range 24 {
		size := 90_000 + i*4_000
		if _, err := w.Exec(`INSERT INTO t (id, body) VALUES (?, ?)`, 100_000+i, bytes.Repeat([]byte{'z'}, size)); err != nil {
			t.Fatal(err)
		}
		var got int
		if err := r.QueryRow(`SELECT length(body) FROM t WHERE id = ?`, 100_000+i).Scan(&got); err != nil || got != size {
			t.Fatalf("a commit of %d bytes read back as %d bytes, %v", size, got, err)
		}
	}
	exec(t, w, `DELETE FROM t WHERE id >= 100000`)

	tx, err = w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for range 500 {
		if _, err := tx.Exec(`INSERT INTO t (body) VALUES (?)`, bytes.Repeat([]byte{'y'}, 1500)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Exec(`DELETE FROM t WHERE id % 3 = 0`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	exec(t, w, `DELETE FROM t WHERE id % 2 = 0`)
	insert(t, w, 10, 1500)

	for _, db := range []*sql.DB{w, r} {
		if n, b := count(t, db); n != 1010 || b != 1010*1500 {
			t.Fatalf("read %d rows, %d bytes; want 1010, %d", n, b, 1010*1500)
		}
		var ys int
		if err := db.QueryRow(`SELECT count(*) FROM t WHERE body = ?`, bytes.Repeat([]byte{'y'}, 1500)).Scan(&ys); err != nil || ys != 0 {
			t.Fatalf("rows of the rolled-back transaction: %d, %v", ys, err)
		}
		integrity(t, db)
	}
}

// What a killed process leaves: the files as they are while the writer is open, copied after
// its commits returned and without a checkpoint, open through the default VFS with every
// commit in them.
func TestCommittedBeforeACrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db")
	w := open(t, path, true)
	exec(t, w, `CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)`)
	for i := range 50 {
		insert(t, w, 1+i%7, 900+i*37)
	}
	want, wantBytes := count(t, w)

	crashed := filepath.Join(t.TempDir(), "db")
	for _, suffix := range []string{"", "-wal"} {
		copyFile(t, path+suffix, crashed+suffix)
	}
	r := open(t, crashed, false)
	if n, b := count(t, r); n != want || b != wantBytes {
		t.Fatalf("after the crash: %d rows, %d bytes; want %d, %d", n, b, want, wantBytes)
	}
	integrity(t, r)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, b, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// The VFS leaves every other file to the default one: a database in rollback-journal mode
// opened through it works as before.
func TestOtherFilesUntouched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(DELETE)&vfs="+walbuf.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	exec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)`)
	asked0, _ := walbuf.Stats()
	insert(t, db, 10, 2000)
	if asked, _ := walbuf.Stats(); asked != asked0 {
		t.Fatalf("a database without a log asked %d log writes", asked-asked0)
	}
	if n, _ := count(t, db); n != 10 {
		t.Fatalf("%d rows, want 10", n)
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || !strings.EqualFold(mode, "delete") {
		t.Fatal(fmt.Sprint(mode, err))
	}
}
