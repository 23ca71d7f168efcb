package sqlite_test

import (
	"os"
	"testing"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// modernc.org/sqlite v1.55.0, the version glebarez/go-sqlite v1.23.0 asks for, allocates each
// statement journal's chunk with its own mmap: publishes took 6× and captures 2.7× as long
// (docs/performance.md, 8614f72). go.mod names a later one, and a tidy or an upgrade of
// go-sqlite must not take it below that.
func TestTheSQLiteLibraryIsNotOneOfTheSlowVersions(t *testing.T) {
	data, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Require {
		if r.Mod.Path != "modernc.org/sqlite" {
			continue
		}
		if semver.Compare(r.Mod.Version, "v1.62.0") < 0 {
			t.Fatalf("go.mod requires modernc.org/sqlite %s; v1.62.0 or later is measured fast (v1.55.0 is 2.5–6× slower)", r.Mod.Version)
		}
		return
	}
	t.Fatal("go.mod does not name modernc.org/sqlite: the version go-sqlite asks for would be used")
}
