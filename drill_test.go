package larder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/larder/larder/internal/testenv"
)

// needPostgres: the drills that start a cluster fail without PostgreSQL
// (testenv), unless LARDER_NO_PG=1.
func needPostgres(t *testing.T) { testenv.NeedPostgres(t) }

// drillTempDir is a temporary folder for a drill's scratch cluster: when
// the tests run as root, PostgreSQL's server user must be able to enter
// it, which t.TempDir's mode 0700 folders forbid.
func drillTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDrillPostgres(t *testing.T) {
	needPostgres(t)
	tr := newTestRepo(t)
	ctx := context.Background()
	w := tr.open(t, tr.write)
	m := tr.open(t, tr.master)
	for _, f := range committedFixtures(t) {
		res, err := Ingest(ctx, w, f, IngestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		snap, err := m.FindSnapshot(ctx, res.Snapshot.String())
		if err != nil {
			t.Fatal(err)
		}
		phases := map[string]int64{} // the last done of each phase
		pctx := WithProgress(ctx, func(phase string, done, total int64) {
			if done == total {
				phases[phase] = done
			}
		})
		rec, err := Drill(pctx, m, snap, DrillOptions{Postgres: true, TempDir: drillTempDir(t)})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if phases["restore"] != int64(snap.Manifest.Size) {
			t.Errorf("%s: progress: the restore reported %d of %d bytes done", filepath.Base(f), phases["restore"], snap.Manifest.Size)
		}
		if !strings.Contains(f, "zulip") && (phases["load into PostgreSQL"] != 1 || phases["count rows"] < 10) {
			t.Errorf("%s: progress: the PostgreSQL phases reported %v", filepath.Base(f), phases)
		}
		if strings.Contains(f, "zulip") {
			// No PostgreSQL dump inside: the export's own check, the
			// committed fixture's 9 JSON files and 23 files of records.
			if !rec.OK || !rec.NoDatabase || rec.Postgres != nil || rec.Zulip == nil || rec.Zulip.JSONFiles != 9 ||
				rec.Zulip.Records != 23 || len(rec.Zulip.Problems) > 0 {
				t.Fatalf("%s: %+v %+v", filepath.Base(f), rec, rec.Zulip)
			}
			continue
		}
		if !rec.OK || !rec.SHA256OK || rec.Postgres == nil || rec.Postgres.Tables < 10 || rec.NoDatabase || rec.Zulip != nil {
			t.Fatalf("%s: drill failed: %+v %+v", filepath.Base(f), rec, rec.Postgres)
		}
		t.Logf("%s: %d tables, %d rows, PostgreSQL %s", filepath.Base(f), rec.Postgres.Tables, rec.Postgres.Rows, rec.Postgres.Version)
	}
	// The records are signed and visible to the auditor.
	a := tr.open(t, tr.audit)
	drills, problems, err := a.Drills(ctx)
	if err != nil || len(problems) > 0 || len(drills) < 5 {
		t.Fatalf("audit sees %d drills, problems %v, err %v", len(drills), problems, err)
	}
}

func TestDrillDetectsWrongCounts(t *testing.T) {
	needPostgres(t)
	tr := newTestRepo(t)
	ctx := context.Background()
	w := tr.open(t, tr.write)
	m := tr.open(t, tr.master)
	res, err := Ingest(ctx, w, committedFixtures(t)[3], IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := m.FindSnapshot(ctx, res.Snapshot.String())
	if err != nil {
		t.Fatal(err)
	}
	// Tamper with the manifest's summary in memory: one table off by one.
	s := string(snap.Manifest.Summary)
	i := strings.Index(s, `"rows":`)
	snap.Manifest.Summary = []byte(s[:i] + `"rows":99999` + s[strings.IndexAny(s[i+7:], ",}")+i+7:])
	rec, err := Drill(ctx, m, snap, DrillOptions{Postgres: true, TempDir: drillTempDir(t), NoRecord: true})
	if err != nil {
		t.Fatal(err)
	}
	if rec.OK || rec.Postgres == nil || len(rec.Postgres.Mismatches) != 1 {
		t.Fatalf("a wrong row count went unnoticed: %+v (error %q)", rec.Postgres, rec.Error)
	}
}
