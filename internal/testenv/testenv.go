// Package testenv says what larder's tests need from the machine, in one
// place: a test that needs a tool or PostgreSQL fails, loudly, when it is
// missing (CI installs everything, .ci/run); only LARDER_NO_PG=1 skips the
// PostgreSQL tests, on purpose.
package testenv

import (
	"os"
	"os/exec"
	"testing"

	"github.com/larder/larder/internal/pgcluster"
)

// NoPostgres reports whether LARDER_NO_PG=1 asks to skip the tests that
// need PostgreSQL.
func NoPostgres() bool { return os.Getenv("LARDER_NO_PG") == "1" }

// NeedPostgres fails the test when PostgreSQL's programs are missing, and
// skips it when LARDER_NO_PG=1.
func NeedPostgres(t testing.TB) {
	t.Helper()
	if NoPostgres() {
		t.Skip("LARDER_NO_PG=1: skipping a test that needs PostgreSQL")
	}
	if _, err := pgcluster.FindBinDir(""); err != nil {
		t.Fatalf("PostgreSQL is required (apt-get install postgresql, or set LARDER_NO_PG=1 to skip): %v", err)
	}
}

// NeedTool returns the path of a program the test needs, and fails the
// test when it is missing.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("the test needs %s (.ci/run installs it): %v", name, err)
	}
	return p
}
