package larder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/larder/larder/internal/testenv"
	"github.com/larder/larder/repo"
)

// dumpOnly is the smallest committed Discourse backup with a dump.
const dumpOnly = "testdata/small/dumponly/discourse-2026-01-05-031742-v20251130020603.sql.gz"

// usersRows is the rows of public.users in dumpOnly.
const usersRows = "24"

// drillRepo is a repository with the master and write keys open.
type drillRepo struct {
	tr   *testRepo
	w, m *repo.Repo
}

func newDrillRepo(t *testing.T) *drillRepo {
	tr := newTestRepo(t)
	return &drillRepo{tr: tr, w: tr.open(t, tr.write), m: tr.open(t, tr.master)}
}

// ingest stores path and returns its snapshot as the master sees it.
func (d *drillRepo) ingest(t *testing.T, path string) *repo.Snapshot {
	t.Helper()
	ctx := context.Background()
	res, err := Ingest(ctx, d.w, path, IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := d.m.FindSnapshot(ctx, res.Snapshot.String())
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// drills returns the drill records stored.
func (d *drillRepo) drills(t *testing.T) []*repo.DrillRecord {
	t.Helper()
	recs, problems, err := d.m.Drills(context.Background())
	if err != nil || len(problems) > 0 {
		t.Fatalf("drills: %v %v", err, problems)
	}
	return recs
}

// TestDrillNoDatabase: a snapshot that holds no dump is drilled as "no
// database", which is no failure (drill --all --postgres on a mixed
// repository passes), and recorded so.
func TestDrillNoDatabase(t *testing.T) {
	needPostgres(t)
	d := newDrillRepo(t)
	noise := filepath.Join(t.TempDir(), "noise.bin")
	b := make([]byte, 20000)
	for i := range b {
		b[i] = byte(i*7919 + i/13)
	}
	if err := os.WriteFile(noise, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{noise, dumpOnly} {
		rec, err := Drill(context.Background(), d.m, d.ingest(t, f), DrillOptions{Postgres: true, TempDir: drillTempDir(t)})
		if err != nil || !rec.OK {
			t.Fatalf("%s: %v %+v", f, err, rec)
		}
	}
	recs := d.drills(t)
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	for _, r := range recs {
		noDB := r.Bytes == 20000
		if r.Format != repo.DrillFormat || r.NoDatabase != noDB || (r.Postgres == nil) != noDB || r.Zulip != nil || r.Error != "" {
			t.Errorf("record %+v (postgres %+v)", r, r.Postgres)
		}
	}
}

// TestDrillZulipDamaged: the Zulip check fails a drill whose export lacks
// a file its records.json names.
func TestDrillZulipDamaged(t *testing.T) {
	needPostgres(t)
	testenv.NeedTool(t, "tar")
	d := newDrillRepo(t)
	stage := t.TempDir()
	runTool(t, "tar", "-xzf", "testdata/small/zulip/zulip-export-qub0z170.tar.gz", "-C", stage)
	if err := os.Remove(filepath.Join(stage, "zulip-export-qub0z170/uploads/2/1c/3fcf0e3f5a59f688637b8ee4/IMG_8543.jpeg")); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(t.TempDir(), "zulip-export-qub0z170.tar.gz")
	runTool(t, "tar", "-czf", export, "-C", stage, "zulip-export-qub0z170")
	rec, err := Drill(context.Background(), d.m, d.ingest(t, export), DrillOptions{Postgres: true, TempDir: drillTempDir(t), NoRecord: true})
	if err != nil {
		t.Fatal(err)
	}
	want := "uploads/records.json: 2/1c/3fcf0e3f5a59f688637b8ee4/IMG_8543.jpeg is missing"
	if rec.OK || !rec.NoDatabase || rec.Zulip == nil || len(rec.Zulip.Problems) != 1 || rec.Zulip.Problems[0] != want || rec.Zulip.Records != 22 {
		t.Fatalf("a missing upload went unnoticed: %+v %+v", rec, rec.Zulip)
	}
}

func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// TestDrillSetupErrors: the operator's mistakes are DrillSetupErrors
// naming the option, returned before anything is drilled, and nothing is
// recorded.
func TestDrillSetupErrors(t *testing.T) {
	needPostgres(t)
	d := newDrillRepo(t)
	snap := d.ingest(t, dumpOnly)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		opts   DrillOptions
		option string
		says   string
	}{
		{DrillOptions{Postgres: true, PGBin: t.TempDir()}, "PGBin", "lacks initdb"},
		{DrillOptions{Postgres: true, TempDir: "/nonexistent/larder"}, "TempDir", "temporary folder /nonexistent/larder does not exist"},
		{DrillOptions{Postgres: true, TempDir: file}, "TempDir", "is not a folder"},
		{DrillOptions{Exec: "true"}, "Exec", "needs the PostgreSQL drill"},
		{DrillOptions{Keep: func(*KeptDatabase) {}}, "Keep", "only a PostgreSQL drill"},
	}
	if os.Geteuid() == 0 {
		cases = append(cases, struct {
			opts   DrillOptions
			option string
			says   string
		}{DrillOptions{Postgres: true, PGUser: "larder-no-such-user"}, "PGUser", `there is no OS user "larder-no-such-user"`})
	}
	for _, tc := range cases {
		rec, err := Drill(context.Background(), d.m, snap, tc.opts)
		var se *DrillSetupError
		if rec != nil || !errors.As(err, &se) || se.Option != tc.option || !strings.Contains(err.Error(), tc.says) ||
			strings.HasPrefix(err.Error(), "pgcluster:") {
			t.Errorf("Drill(%+v) = %+v, %v; want a DrillSetupError on %s saying %q", tc.opts, rec, err, tc.option, tc.says)
		}
		if cerr := CheckDrill(context.Background(), tc.opts); cerr == nil || cerr.Error() != err.Error() {
			t.Errorf("CheckDrill(%+v) = %v, Drill said %v", tc.opts, cerr, err)
		}
	}
	if n := len(d.drills(t)); n != 0 {
		t.Errorf("%d drill records after setup errors, want none", n)
	}
}

// TestDrillFailureNamesVersion: a dump the server refuses fails the drill,
// and the message and the record name the PostgreSQL version.
func TestDrillFailureNamesVersion(t *testing.T) {
	needPostgres(t)
	d := newDrillRepo(t)
	// (Over 512 bytes: GNU tar lists a shorter file as an empty archive.)
	var rows strings.Builder
	for i := range 300 {
		rows.WriteString(strconv.Itoa(i) + "\n")
	}
	sql := "--\n-- PostgreSQL database dump\n--\n\nCREATE SCHEMA public;\nCREATE TABLE public.t (id integer);\nCOPY public.t (id) FROM stdin;\n" +
		rows.String() + "\\.\n\nSELECT larder_no_such_function();\n"
	dump := filepath.Join(t.TempDir(), "discourse-2026-01-07-000000-v20251130140459.sql.gz")
	var gz bytes.Buffer
	cmd := exec.Command("gzip", "-c")
	cmd.Stdin, cmd.Stdout = strings.NewReader(sql), &gz
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dump, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := Drill(context.Background(), d.m, d.ingest(t, dump), DrillOptions{Postgres: true, TempDir: drillTempDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	if rec.OK || rec.Postgres == nil || !strings.Contains(rec.Postgres.Version, "PostgreSQL") ||
		!strings.HasPrefix(rec.Error, "PostgreSQL 1") || !strings.Contains(rec.Error, "larder_no_such_function") {
		t.Fatalf("record %+v, postgres %+v", rec, rec.Postgres)
	}
	if stored := d.drills(t); len(stored) != 1 || stored[0].Postgres == nil || stored[0].Postgres.Version != rec.Postgres.Version {
		t.Fatalf("stored %+v", stored)
	}
}

// TestDrillExec runs a command against the loaded database: it sees the
// data through the PG* variables, its output reaches ExecStdout, and its
// exit status is recorded without failing the drill.
func TestDrillExec(t *testing.T) {
	needPostgres(t)
	d := newDrillRepo(t)
	snap := d.ingest(t, dumpOnly)
	var stdout, stderr bytes.Buffer
	script := `psql -XtAc "SELECT count(*) FROM public.users" && echo "$LARDER_SNAPSHOT $PGDATABASE" && echo oops >&2 && exit 3`
	rec, err := Drill(context.Background(), d.m, snap, DrillOptions{Postgres: true, TempDir: drillTempDir(t), Exec: script,
		ExecStdout: &stdout, ExecStderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	if want := usersRows + "\n" + snap.ID.String() + " larder_drill\n"; stdout.String() != want || stderr.String() != "oops\n" {
		t.Errorf("the command printed %q and %q, want %q and oops", stdout.String(), stderr.String(), want)
	}
	if !rec.OK || rec.Exec == nil || *rec.Exec != (repo.ExecDrill{Command: script, ExitStatus: 3}) {
		t.Fatalf("record %+v, exec %+v", rec, rec.Exec)
	}
	// A migration changes the scratch database, then a check query sees it.
	migrate := `psql -X -v ON_ERROR_STOP=1 -qc "ALTER TABLE public.users ADD COLUMN larder_rehearsal integer DEFAULT 7" &&
test "$(psql -XtAc 'SELECT sum(larder_rehearsal) FROM public.users')" = ` + strconv.Itoa(7*24)
	rec, err = Drill(context.Background(), d.m, snap, DrillOptions{Postgres: true, TempDir: drillTempDir(t), Exec: migrate})
	if err != nil || rec.Exec == nil || rec.Exec.ExitStatus != 0 || rec.Exec.Error != "" {
		t.Fatalf("the migration: %v %+v", err, rec.Exec)
	}
	stored := d.drills(t)
	if len(stored) != 2 || stored[0].Exec == nil || stored[0].Exec.ExitStatus != 3 || stored[1].Exec == nil || stored[1].Exec.Command != migrate {
		t.Fatalf("stored records: %+v %+v", stored[0].Exec, stored[1].Exec)
	}
}

// TestDrillKeep leaves the loaded database running: it answers with the
// snapshot's data, the drill's restored file is gone, and the printed
// stop command stops it and removes its folder.
func TestDrillKeep(t *testing.T) {
	needPostgres(t)
	d := newDrillRepo(t)
	tmp := drillTempDir(t)
	var kept []*KeptDatabase
	opts := DrillOptions{Postgres: true, TempDir: tmp, Keep: func(k *KeptDatabase) { kept = append(kept, k) }}
	if os.Geteuid() == 0 {
		// As on a Discourse Docker host, where there is no postgres user.
		opts.PGUser = "nobody"
	}
	rec, err := Drill(context.Background(), d.m, d.ingest(t, dumpOnly), opts)
	if err != nil || !rec.OK || len(kept) != 1 {
		t.Fatalf("%v %+v, %d kept", err, rec, len(kept))
	}
	k := kept[0]
	t.Cleanup(func() { _ = k.Stop() })
	if !strings.HasPrefix(k.Dir, tmp) || k.Database != "larder_drill" || k.User != "postgres" {
		t.Errorf("kept %+v", k)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "larder-drill-*")); len(left) > 0 {
		t.Errorf("the restored backup was left behind: %v", left)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(k.Dir, "data"))
		if err != nil {
			t.Fatal(err)
		}
		if uid := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)); uid != u.Uid {
			t.Errorf("the server's data belongs to uid %s, want nobody's %s", uid, u.Uid)
		}
	}
	q := exec.Command("sh", "-c", `psql -XtAc "SELECT count(*) FROM public.users"`)
	q.Env = k.Env()
	if out, err := q.CombinedOutput(); err != nil || string(out) != usersRows+"\n" {
		t.Fatalf("the kept database answers %q, %v", out, err)
	}
	if out, err := exec.Command("sh", "-c", k.Psql+` -XtAc "SELECT 1"`).CombinedOutput(); err != nil || string(out) != "1\n" {
		t.Errorf("%s: %q, %v", k.Psql, out, err)
	}
	if out, err := exec.Command("sh", "-c", k.StopCommand).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", k.StopCommand, err, out)
	}
	if _, err := os.Stat(k.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the stop command %s remains: %v", k.Dir, err)
	}
}

// TestDrillDumpWithoutTables: a backup that holds a dump in which ingest
// counted no tables is no "no database": the drill fails and says so.
func TestDrillDumpWithoutTables(t *testing.T) {
	needPostgres(t)
	testenv.NeedTool(t, "tar")
	d := newDrillRepo(t)
	stage := t.TempDir()
	// A schema-only dump (no COPY) in a Discourse-shaped tar, and alone.
	sql := "--\n-- PostgreSQL database dump\n--\n\nCREATE SCHEMA public;\n" + strings.Repeat("-- padding\n", 60)
	if err := os.WriteFile(filepath.Join(stage, "dump.sql"), []byte(sql), 0o644); err != nil {
		t.Fatal(err)
	}
	runTool(t, "gzip", "-k", filepath.Join(stage, "dump.sql"))
	if err := os.WriteFile(filepath.Join(stage, "meta.json"), []byte(`{"version":"20251130140459"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "discourse-2026-01-07-000000-v20251130140459.tar.gz")
	runTool(t, "tar", "-czf", backup, "-C", stage, "meta.json", "dump.sql.gz")
	for f, says := range map[string]string{
		backup:                              "holds a PostgreSQL dump (dump.sql.gz), but ingest counted no tables",
		filepath.Join(stage, "dump.sql.gz"): "holds a PostgreSQL dump (the file itself), but ingest counted no tables",
	} {
		rec, err := Drill(context.Background(), d.m, d.ingest(t, f), DrillOptions{Postgres: true, TempDir: drillTempDir(t), NoRecord: true})
		if err != nil {
			t.Fatal(err)
		}
		if rec.OK || rec.NoDatabase || !rec.SHA256OK || !strings.Contains(rec.Error, says) {
			t.Errorf("%s: %+v, want a failure saying %q", filepath.Base(f), rec, says)
		}
	}
}
