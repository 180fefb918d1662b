package larder

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/larder/larder/internal/units"

	"github.com/larder/larder/crypto"

	"github.com/larder/larder/internal/pgcluster"
	"github.com/larder/larder/internal/zulip"
	"github.com/larder/larder/recompress"
	"github.com/larder/larder/repo"
)

// DrillOptions tune Drill.
type DrillOptions struct {
	// Postgres loads the restored dump into a scratch PostgreSQL cluster
	// and compares its row counts with the snapshot's summary; a snapshot
	// without a dump is drilled as "no database", and a Zulip export gets
	// the Zulip check instead.
	Postgres bool
	// PGBin is where the PostgreSQL programs are (default: searched).
	PGBin string
	// PGUser is the OS user that runs the scratch server when the caller
	// is root (PostgreSQL refuses to run as root); empty means
	// pgcluster.DefaultServerUser: "postgres" where it exists, else
	// "nobody". It is ignored when the caller is not root.
	PGUser string
	// TempDir holds the restored file and the scratch cluster (default:
	// the system's temporary folder). As root, PGUser must be able to
	// enter it.
	TempDir string
	// Host names this machine in the drill record.
	Host string
	// NoRecord skips storing the drill record.
	NoRecord bool

	// Exec is a shell command (sh -c) run as the caller against the loaded
	// scratch database, with PGHOST, PGPORT, PGUSER and PGDATABASE set,
	// PATH starting with the server's bin folder, and LARDER_SNAPSHOT the
	// snapshot's ID: a migration, a check query. It runs only when the
	// dump loaded; its exit status goes in the record and does not make
	// the drill fail. Needs Postgres.
	Exec string
	// ExecStdout and ExecStderr receive Exec's output; nil discards it.
	ExecStdout, ExecStderr io.Writer

	// Keep, when set, leaves the scratch database running after a load
	// that succeeded (and after Exec) and hands it to Keep: the caller
	// owns it then, and stops it with KeptDatabase.Stop or tells the
	// operator how (KeptDatabase.StopCommand). Needs Postgres.
	Keep func(*KeptDatabase)
}

// DrillSetupError reports that a drill could not start because of its
// options or the machine: no PostgreSQL, a bad PGBin, PGUser or TempDir,
// Exec or Keep without Postgres. Nothing was drilled and nothing recorded.
type DrillSetupError struct {
	// Option is the DrillOptions field at fault ("PGBin", "PGUser",
	// "TempDir", "Exec", "Keep"), or "" when no PostgreSQL installation
	// was found at all.
	Option string
	Err    error
}

// Error is the cause's message, without the internal package's prefix.
func (e *DrillSetupError) Error() string { return strings.TrimPrefix(e.Err.Error(), "pgcluster: ") }

// Unwrap returns the cause.
func (e *DrillSetupError) Unwrap() error { return e.Err }

// drillOption maps pgcluster's option names to DrillOptions fields.
var drillOption = map[string]string{"BinDir": "PGBin", "ServerUser": "PGUser", "Dir": "TempDir", "": ""}

// CheckDrill checks what Drill with opts needs from the machine, without
// drilling anything: with Postgres, the PostgreSQL programs, the server
// user (as root) and the temporary folder. Its errors are
// [*DrillSetupError]s. Drill checks the same; call CheckDrill to learn of a
// mistake before opening a repository.
func CheckDrill(ctx context.Context, opts DrillOptions) error {
	_, err := checkDrill(ctx, opts)
	return err
}

func checkDrill(ctx context.Context, opts DrillOptions) (*pgcluster.Setup, error) {
	if !opts.Postgres {
		switch {
		case opts.Exec != "":
			return nil, &DrillSetupError{Option: "Exec", Err: errors.New("a command runs against the loaded database: it needs the PostgreSQL drill")}
		case opts.Keep != nil:
			return nil, &DrillSetupError{Option: "Keep", Err: errors.New("only a PostgreSQL drill has a database to keep")}
		}
		return nil, nil
	}
	setup, err := pgcluster.Check(ctx, pgcluster.Options{BinDir: opts.PGBin, Dir: opts.TempDir, ServerUser: opts.PGUser})
	var se *pgcluster.SetupError
	if errors.As(err, &se) {
		return nil, &DrillSetupError{Option: drillOption[se.Option], Err: err}
	}
	return setup, err
}

// Drill proves that a snapshot restores: the original is rebuilt and its
// SHA-256 checked; with Postgres, the backup is unpacked with the real
// tools the way Discourse restores it (tar, gzip) and its dump loaded into
// a scratch cluster with psql --single-transaction -v ON_ERROR_STOP=1 (or
// pg_restore for a directory-format dump), and the tables' row counts are
// compared with the counts recorded at ingest. A snapshot without a dump
// is "no database" (rec.NoDatabase), which is no failure; when it is a
// Zulip export, the export is unpacked with tar and checked as Zulip's
// import reads it (rec.Zulip). The result is signed and stored in the
// repository (master key), where audit sees it.
//
// Mistakes of the options or the machine are [*DrillSetupError]s, returned
// with no record before anything is drilled.
func Drill(ctx context.Context, r *repo.Repo, snap *repo.Snapshot, opts DrillOptions) (*repo.DrillRecord, error) {
	if r.Role() != crypto.RoleMaster {
		return nil, fmt.Errorf("%w: drills need the master key", repo.ErrPermission)
	}
	setup, err := checkDrill(ctx, opts)
	if err != nil {
		return nil, err
	}
	rec := &repo.DrillRecord{Format: repo.DrillFormat, Snapshot: snap.ID, Time: time.Now().UTC(), Host: opts.Host}
	var derr error
	if opts.Postgres {
		derr = drillPostgres(ctx, r, snap, opts, setup, rec)
	} else {
		var n uint64
		n, derr = Restore(ctx, r, snap, io.Discard)
		rec.Bytes = n
		rec.SHA256OK = derr == nil
	}
	if derr == nil {
		derr = ctx.Err() // an Exec that the interruption ended
	}
	if derr != nil {
		if errors.Is(derr, context.Canceled) {
			return nil, derr
		}
		rec.Error = derr.Error()
	}
	rec.OK = derr == nil && rec.SHA256OK && (rec.Postgres == nil || len(rec.Postgres.Mismatches) == 0) &&
		(rec.Zulip == nil || len(rec.Zulip.Problems) == 0)
	if !opts.NoRecord {
		if _, err := r.RecordDrill(context.WithoutCancel(ctx), rec); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

func drillPostgres(ctx context.Context, r *repo.Repo, snap *repo.Snapshot, opts DrillOptions, setup *pgcluster.Setup, rec *repo.DrillRecord) (err error) {
	work, err := os.MkdirTemp(opts.TempDir, "larder-drill-")
	if err != nil {
		return err
	}
	// The restored backup holds private data: a folder that stays is a
	// failure of the drill.
	defer func() {
		if rerr := os.RemoveAll(work); rerr != nil {
			err = errors.Join(err, fmt.Errorf("removing the drill's folder: %w", rerr))
		}
	}()
	orig := filepath.Join(work, "backup")
	n, err := RestoreFile(ctx, r, snap, orig)
	rec.Bytes = n
	if err != nil {
		return err
	}
	rec.SHA256OK = true

	var summary recompress.Summary
	if err := json.Unmarshal(snap.Manifest.Summary, &summary); err != nil {
		return fmt.Errorf("snapshot %s: summary: %w", snap.ID.Short(), err)
	}
	if len(summary.Tables) == 0 {
		// No dump was counted at ingest: nothing to compare. Unless the
		// file holds one after all, there is no database, which is no
		// failure: the file itself rebuilt exactly (checked above).
		held, err := inspectRestored(ctx, orig)
		if err != nil {
			return err
		}
		if held.dump != "" {
			return fmt.Errorf("the backup holds a PostgreSQL dump (%s), but ingest counted no tables in it: nothing to compare a load with", held.dump)
		}
		rec.NoDatabase = true
		if held.zulip {
			return drillZulip(ctx, orig, work, rec)
		}
		return nil
	}
	d := &pgDrill{snap: snap, opts: opts, setup: setup, summary: &summary, orig: orig, work: work,
		pg: &repo.PGDrill{Version: setup.Version}, report: reporter(ctx, r)}
	rec.Postgres = d.pg
	if err := d.run(ctx, rec); err != nil {
		// Which server refused the dump matters to whoever reads this.
		return fmt.Errorf("%s: %w", pgcluster.ShortVersion(setup.Version), err)
	}
	return nil
}

// drillDatabase is the scratch cluster's database the dump loads into.
const drillDatabase = "larder_drill"

// pgDrill is one snapshot's PostgreSQL drill.
type pgDrill struct {
	snap       *repo.Snapshot
	opts       DrillOptions
	setup      *pgcluster.Setup
	summary    *recompress.Summary
	orig, work string
	pg         *repo.PGDrill
	report     repo.Progress // the phases after the restore: load, count rows
}

// run starts the scratch cluster, loads the dump, compares the row
// counts, runs Exec and, with Keep, leaves the cluster running.
func (d *pgDrill) run(ctx context.Context, rec *repo.DrillRecord) (err error) {
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{BinDir: d.setup.BinDir, Dir: d.opts.TempDir, ServerUser: d.opts.PGUser})
	if err != nil {
		return err
	}
	kept := false
	defer func() {
		if kept {
			return
		}
		if serr := cluster.Stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the drill's PostgreSQL: %w", serr))
		}
	}()
	if err := cluster.CreateDatabase(ctx, drillDatabase); err != nil {
		return err
	}
	// pg_dump --schema=public writes CREATE SCHEMA public; start without it.
	if err := cluster.Exec(ctx, drillDatabase, "DROP SCHEMA public CASCADE;"); err != nil {
		return err
	}
	d.report("load into PostgreSQL", 0, 1)
	files, err := cluster.LoadBackup(ctx, drillDatabase, d.orig, d.work)
	if err != nil {
		return err
	}
	d.report("load into PostgreSQL", 1, 1)
	d.compare(ctx, cluster, files)
	if d.opts.Exec != "" {
		rec.Exec = runExec(ctx, cluster, d.snap, d.opts)
	}
	if d.opts.Keep != nil && ctx.Err() == nil {
		kept = true
		d.opts.Keep(&KeptDatabase{Snapshot: d.snap.ID, Version: d.setup.Version, Host: cluster.SocketDir(), Port: cluster.Port(),
			User: pgcluster.Superuser, Database: drillDatabase, Dir: cluster.Dir(),
			Psql: cluster.ConnectCommand(drillDatabase), StopCommand: cluster.StopCommand(), cluster: cluster})
	}
	return nil
}

// compare counts each table's rows and notes those that differ from the
// counts recorded at ingest.
func (d *pgDrill) compare(ctx context.Context, cluster *pgcluster.Cluster, files map[string]string) {
	pg := d.pg
	for i, t := range d.summary.Tables {
		d.report("count rows", int64(i), int64(len(d.summary.Tables)))
		table := t.Table
		if name, ok := strings.CutPrefix(table, "file "); ok {
			// Directory format: the data file's table, from pg_restore -l.
			if table, ok = files[name]; !ok {
				pg.Mismatches = append(pg.Mismatches, fmt.Sprintf("%s: no table in the dump's table of contents", name))
				continue
			}
		}
		got, err := cluster.CountRows(ctx, drillDatabase, table)
		if err != nil {
			pg.Mismatches = append(pg.Mismatches, fmt.Sprintf("%s: %v", table, firstLine(err.Error())))
			continue
		}
		pg.Tables++
		pg.Rows += got
		if got != t.Rows {
			pg.Mismatches = append(pg.Mismatches, fmt.Sprintf("%s: %d rows loaded, %d recorded at ingest", table, got, t.Rows))
		}
	}
	d.report("count rows", int64(len(d.summary.Tables)), int64(len(d.summary.Tables)))
}

// maxExecRecorded bounds the command line kept in a drill record.
const maxExecRecorded = 4 << 10

// runExec runs DrillOptions.Exec against the loaded database and says how
// it ended.
func runExec(ctx context.Context, cluster *pgcluster.Cluster, snap *repo.Snapshot, opts DrillOptions) *repo.ExecDrill {
	e := &repo.ExecDrill{Command: opts.Exec, ExitStatus: -1}
	if len(e.Command) > maxExecRecorded {
		e.Command = e.Command[:maxExecRecorded] + "…"
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", opts.Exec)
	cmd.Env = append(cluster.ClientEnv(drillDatabase), "LARDER_SNAPSHOT="+snap.ID.String())
	cmd.Stdout, cmd.Stderr = opts.ExecStdout, opts.ExecStderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		e.ExitStatus = 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		e.ExitStatus = ee.ExitCode()
	default:
		e.Error = firstLine(err.Error())
	}
	return e
}

// KeptDatabase is a drill's scratch database left running
// (DrillOptions.Keep): the snapshot's data, loaded, reachable on a Unix
// socket by the database superuser without a password. It outlives the
// process that drilled it, until Stop or until the operator runs
// StopCommand.
type KeptDatabase struct {
	Snapshot repo.ID
	Version  string // the server's "postgres --version"
	Host     string // the socket folder (PGHOST)
	Port     int
	User     string // the database superuser
	Database string
	Dir      string // the cluster's folder (data, socket, log); removed by Stop
	// Psql is a shell command line that connects with the server's psql.
	Psql string
	// StopCommand is a shell command line that stops the server and
	// removes Dir.
	StopCommand string

	cluster *pgcluster.Cluster
}

// Env returns the environment of a program that should use the database:
// this process's without its PG* variables, plus PGHOST, PGPORT, PGUSER,
// PGDATABASE, and PATH starting with the server's bin folder.
func (k *KeptDatabase) Env() []string { return k.cluster.ClientEnv(k.Database) }

// Stop stops the server and removes its folder.
func (k *KeptDatabase) Stop() error { return k.cluster.Stop() }

// drillZulip unpacks a Zulip export with tar, as an operator restoring it
// would, and checks it (rec.Zulip).
func drillZulip(ctx context.Context, orig, work string, rec *repo.DrillRecord) error {
	x := filepath.Join(work, "x")
	if err := os.Mkdir(x, 0o700); err != nil {
		return err
	}
	// GNU tar sees the gzip itself; root's extraction keeps no owners.
	cmd := exec.CommandContext(ctx, "tar", "--extract", "--no-same-owner", "--file", orig, "--directory", x)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("unpacking the Zulip export with tar: %w: %s", err, firstLine(string(out)))
	}
	root, ok := zulip.Root(x)
	if !ok {
		rec.Zulip = &repo.ZulipDrill{Problems: []string{"the export unpacks to more than its one folder with realm.json"}}
		return nil
	}
	rep, err := zulip.Check(ctx, root)
	if err != nil {
		return err
	}
	rec.Zulip = &repo.ZulipDrill{JSONFiles: rep.JSONFiles, Records: rep.Records, Problems: rep.Problems}
	return nil
}

// maxTarName bounds a member name in tar's listing.
const maxTarName = 1 << 20

// held is what inspectRestored found in a restored file.
type held struct {
	zulip bool   // a Zulip export: realm.json at the top of a tar
	dump  string // a PostgreSQL dump: a Discourse backup's member, or the file itself
}

// dumpMembers are where Discourse backups keep their dump.
var dumpMembers = map[string]bool{"dump.sql.gz": true, "dump.sql": true, "db/toc.dat": true}

// inspectRestored looks into a restored file whose summary counted no
// tables: its tar listing (GNU tar, which sees a gzip itself), else its
// head, through gzip when it is one.
func inspectRestored(ctx context.Context, path string) (held, error) {
	var h held
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(lctx, "tar", "--list", "--file", path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return h, err
	}
	if err := cmd.Start(); err != nil {
		return h, fmt.Errorf("tar: %w", err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), maxTarName)
	for sc.Scan() {
		name := strings.TrimPrefix(sc.Text(), "./")
		if dumpMembers[name] {
			h.dump = name
		}
		if zulip.IsExportMember(name) {
			h.zulip = true
		}
		if h.dump != "" || h.zulip {
			cancel() // no need to read the rest
			break
		}
	}
	_, _ = io.Copy(io.Discard, stdout) // let tar end: a file that is no tar is no export
	_ = cmd.Wait()
	if err := ctx.Err(); err != nil {
		return h, err
	}
	if h.dump == "" && !h.zulip && dumpHead(path) {
		h.dump = "the file itself"
	}
	return h, nil
}

// dumpHead reports whether the file (or the gzip it is) starts as
// pg_dump's plain or custom format does.
func dumpHead(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return false
		}
		r = zr
	}
	head := make([]byte, len(pgDumpPlain))
	n, _ := io.ReadFull(r, head) // a short file has a short head
	head = head[:n]
	return string(head) == pgDumpPlain || strings.HasPrefix(string(head), pgDumpCustom)
}

// The heads of pg_dump's plain and custom formats.
const (
	pgDumpPlain  = "--\n-- PostgreSQL database dump"
	pgDumpCustom = "PGDMP"
)

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// DrillSummary sums a drill record up in one line, as `larder drill` and
// the admin page show it: "95.3 kB restored, sha256 verified, PostgreSQL
// 15.18: 13 tables, 662 rows match".
func DrillSummary(rec *repo.DrillRecord) string {
	line := units.Bytes(rec.Bytes) + " restored"
	if rec.SHA256OK {
		line += ", sha256 verified"
	}
	if pg := rec.Postgres; pg != nil {
		switch {
		case rec.Error != "" && pg.Tables == 0:
			line += fmt.Sprintf(", %s: not loaded", pgcluster.ShortVersion(pg.Version))
		default:
			line += fmt.Sprintf(", %s: %d tables, %d rows", pgcluster.ShortVersion(pg.Version), pg.Tables, pg.Rows)
			if len(pg.Mismatches) == 0 && rec.Error == "" {
				line += " match"
			}
		}
	}
	if rec.NoDatabase {
		line += ", no database"
	}
	if z := rec.Zulip; z != nil {
		line += fmt.Sprintf(", Zulip export: %d JSON files parse, %d records present", z.JSONFiles, z.Records)
	}
	if e := rec.Exec; e != nil {
		if e.ExitStatus >= 0 {
			line += fmt.Sprintf(", --exec exit status %d", e.ExitStatus)
		} else {
			line += ", --exec did not finish"
		}
	}
	return line
}
