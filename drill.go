package larder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/larder/larder/internal/pgcluster"
	"github.com/larder/larder/recompress"
	"github.com/larder/larder/repo"
)

// DrillOptions tune Drill.
type DrillOptions struct {
	// Postgres loads the restored dump into a scratch PostgreSQL cluster
	// and compares its row counts with the snapshot's summary.
	Postgres bool
	// PGBin is where the PostgreSQL programs are (default: searched).
	PGBin string
	// TempDir holds the restored file and the scratch cluster.
	TempDir string
	// Host names this machine in the drill record.
	Host string
	// NoRecord skips storing the drill record.
	NoRecord bool
}

// Drill proves that a snapshot restores: the original is rebuilt and its
// SHA-256 checked; with Postgres, the backup is unpacked with the real
// tools the way Discourse restores it (tar, gzip) and its dump loaded into
// a scratch cluster with psql --single-transaction -v ON_ERROR_STOP=1 (or
// pg_restore for a directory-format dump), and the tables' row counts are
// compared with the counts recorded at ingest. The result is signed and
// stored in the repository (master key), where audit sees it.
func Drill(ctx context.Context, r *repo.Repo, snap *repo.Snapshot, opts DrillOptions) (*repo.DrillRecord, error) {
	rec := &repo.DrillRecord{Snapshot: snap.ID, Time: time.Now().UTC(), Host: opts.Host}
	var derr error
	if opts.Postgres {
		derr = drillPostgres(ctx, r, snap, opts, rec)
	} else {
		var n uint64
		n, derr = Restore(ctx, r, snap, io.Discard)
		rec.Bytes = n
		rec.SHA256OK = derr == nil
	}
	if derr != nil {
		if errors.Is(derr, context.Canceled) {
			return nil, derr
		}
		rec.Error = derr.Error()
	}
	rec.OK = derr == nil && rec.SHA256OK && (rec.Postgres == nil || len(rec.Postgres.Mismatches) == 0)
	if !opts.NoRecord {
		if _, err := r.RecordDrill(context.WithoutCancel(ctx), rec); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

func drillPostgres(ctx context.Context, r *repo.Repo, snap *repo.Snapshot, opts DrillOptions, rec *repo.DrillRecord) error {
	bin, err := pgcluster.FindBinDir(opts.PGBin)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(opts.TempDir, "larder-drill-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
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
		// Nothing to load and nothing to compare: no dump was found at
		// ingest. The file itself rebuilt exactly (checked above).
		rec.Postgres = &repo.PGDrill{Mismatches: []string{"the snapshot's summary lists no tables: no PostgreSQL dump was found at ingest"}}
		return nil
	}

	cluster, err := pgcluster.Start(ctx, pgcluster.Options{BinDir: bin, Dir: opts.TempDir})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	const db = "larder_drill"
	if err := cluster.CreateDatabase(ctx, db); err != nil {
		return err
	}
	// pg_dump --schema=public writes CREATE SCHEMA public; start without it.
	if err := cluster.Exec(ctx, db, "DROP SCHEMA public CASCADE;"); err != nil {
		return err
	}
	files, err := loadBackup(ctx, cluster, db, orig, work)
	if err != nil {
		return err
	}
	pg := &repo.PGDrill{Version: cluster.Version()}
	rec.Postgres = pg
	for _, t := range summary.Tables {
		table := t.Table
		if name, ok := strings.CutPrefix(table, "file "); ok {
			// Directory format: the data file's table, from pg_restore -l.
			if table, ok = files[name]; !ok {
				pg.Mismatches = append(pg.Mismatches, fmt.Sprintf("%s: no table in the dump's table of contents", name))
				continue
			}
		}
		rows, err := cluster.Query(ctx, db, "SELECT count(*) FROM "+quoteQualified(table))
		if err != nil {
			pg.Mismatches = append(pg.Mismatches, fmt.Sprintf("%s: %v", table, firstLine(err.Error())))
			continue
		}
		got, _ := strconv.ParseUint(rows[0][0], 10, 64)
		pg.Tables++
		pg.Rows += got
		if got != t.Rows {
			pg.Mismatches = append(pg.Mismatches, fmt.Sprintf("%s: %d rows loaded, %d recorded at ingest", table, got, t.Rows))
		}
	}
	return nil
}

// loadBackup unpacks a restored backup with the real tools and loads its
// dump. It returns, for a directory-format dump, the table of each data
// file.
func loadBackup(ctx context.Context, c *pgcluster.Cluster, db, path, work string) (map[string]string, error) {
	head := make([]byte, 512)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	n, _ := io.ReadFull(f, head)
	f.Close()
	head = head[:n]
	gz := len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b
	x := filepath.Join(work, "x")
	if err := os.MkdirAll(x, 0o700); err != nil {
		return nil, err
	}
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, firstLine(stderr.String()))
		}
		return nil
	}
	isTar := exec.CommandContext(ctx, "tar", "-tf", path).Run() == nil
	switch {
	case isTar:
		// As Discourse: tar --extract (with --gzip when compressed).
		args := []string{"--extract", "--file", path, "--directory", x}
		if gz {
			args = append(args, "--gzip")
		}
		if err := run("tar", args...); err != nil {
			return nil, err
		}
	case gz:
		// A dump-only backup: the file is pg_dump's gzip.
		if err := os.Rename(path, filepath.Join(x, "dump.sql.gz")); err != nil {
			return nil, err
		}
	default:
		if err := os.Rename(path, filepath.Join(x, "dump.sql")); err != nil {
			return nil, err
		}
	}
	switch {
	case exists(filepath.Join(x, "dump.sql.gz")):
		return nil, loadSQL(ctx, c, db, filepath.Join(x, "dump.sql.gz"), true)
	case exists(filepath.Join(x, "dump.sql")):
		return nil, loadSQL(ctx, c, db, filepath.Join(x, "dump.sql"), false)
	case exists(filepath.Join(x, "db", "toc.dat")):
		dir := filepath.Join(x, "db")
		if err := runPG(ctx, c, "pg_restore", "--no-owner", "--no-privileges", "-d", db, dir); err != nil {
			return nil, err
		}
		return tocTables(ctx, c, dir)
	}
	return nil, errors.New("the restored backup holds no dump.sql.gz, dump.sql or db/toc.dat")
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// loadSQL pipes a plain-format dump into psql in one transaction, as
// Discourse's restore does; a gzip dump is read through gzip -dc.
func loadSQL(ctx context.Context, c *pgcluster.Cluster, db, path string, gz bool) error {
	var in io.Reader
	if gz {
		cmd := exec.CommandContext(ctx, "gzip", "-dc", path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		defer cmd.Wait()
		in = out
	} else {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	return c.ExecScript(ctx, db, bufio.NewReaderSize(in, 1<<20), "--single-transaction")
}

func runPG(ctx context.Context, c *pgcluster.Cluster, name string, args ...string) error {
	cmd := c.Command(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, firstLine(stderr.String()))
	}
	return nil
}

// tocTables maps data files (NNNN.dat) to their tables with pg_restore -l.
var tocLine = regexp.MustCompile(`^(\d+); \d+ \d+ TABLE DATA (\S+) (\S+) `)

func tocTables(ctx context.Context, c *pgcluster.Cluster, dir string) (map[string]string, error) {
	cmd := c.Command(ctx, "pg_restore", "-l", dir)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pg_restore -l: %w", err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if g := tocLine.FindStringSubmatch(line); g != nil {
			m[g[1]+".dat"] = g[2] + "." + g[3]
		}
	}
	return m, nil
}

// quoteQualified quotes schema.table for SQL.
func quoteQualified(t string) string {
	parts := strings.SplitN(t, ".", 2)
	for i, p := range parts {
		parts[i] = pgcluster.QuoteIdent(strings.Trim(p, `"`))
	}
	return strings.Join(parts, ".")
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
